//! The command line: `icpd serve` and the admin commands that work on the
//! data directory (also while a server runs on it: SQLite WAL allows that).
//!
//! Output for people goes to stdout as aligned tables; `--json` gives
//! camelCase JSON for scripts. Notes meant only for people (warnings, "shown
//! once") go to stderr, so `icpd secret create ... >> Config.toml` works.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::catalog;
use crate::config::{parse_duration, Config, Overrides};
use crate::error::{Error, Result};
use crate::http::tls;
use crate::ingest_tokens;
use crate::master_key::MasterKey;
use crate::runtimes::{self, RuntimeFilter, Status};
use crate::secrets::{self, NewSecret};
use crate::store::{NewAuditEntry, Store};
use crate::time::{ago, now_millis, rfc3339};

/// icpd: an Integration Control Plane in one binary.
#[derive(Debug, Parser)]
#[command(
    name = "icpd",
    version,
    about,
    propagate_version = true,
    after_help = "`icpd COMMAND --help` describes a command's options and ends with an example.\n\n\
        Examples:\n  icpd serve\n  \
        icpd secret create --env dev --project shop --integration cart >> Config.toml\n  \
        icpd runtime list --env dev"
)]
pub struct Cli {
    /// Configuration file (default: ./icp.toml if it exists).
    #[arg(long, global = true, env = "ICP_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory holding icp.db, master.key and tls/ [default: ./icp-data].
    #[arg(long, global = true, env = "ICP_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL database for the control plane's state, instead of the
    /// embedded SQLite file: postgres://user:password@host:5432/icp
    /// [?sslmode=disable|require|verify-full&sslrootcert=ca.pem].
    #[arg(
        long,
        global = true,
        env = "ICP_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control plane (runtime listener and management listener).
    #[command(
        after_help = "Example:\n  icpd serve --data-dir /var/lib/icpd --management-listen 0.0.0.0:9446"
    )]
    Serve(ServeArgs),
    /// The TLS certificate the listeners use.
    #[command(subcommand, after_help = "Example:\n  icpd cert show")]
    Cert(CertCommand),
    /// Runtime secrets: create, list, revoke.
    #[command(
        subcommand,
        after_help = "Example:\n  icpd secret create --env dev --project shop --integration cart >> Config.toml"
    )]
    Secret(SecretCommand),
    /// Environments.
    #[command(subcommand, after_help = "Example:\n  icpd env create Staging")]
    Env(EnvCommand),
    /// Data planes: where environments run.
    #[command(
        subcommand,
        after_help = "Example:\n  icpd data-plane create \"EU West\" --kind cloud --region eu-west-1"
    )]
    DataPlane(DataPlaneCommand),
    /// Integrations' configuration (Config.toml values) per environment.
    #[command(
        subcommand,
        after_help = "Example:\n  icpd config render --env dev --project shop --integration cart"
    )]
    Config(ConfigCommand),
    /// Promote an integration (its deployment record and configuration) to
    /// the next environment of its project's pipeline, as a user: applied at
    /// once when the target requires no approval, else pending until other
    /// users approve it in the API or console.
    #[command(after_help = "Example:\n  \
        icpd promote --project shop --integration cart --from dev --to prod --as alice \\\n    \
        --set shop.cart.timeout=30 --set-secret shop.cart.password < prod-password.txt")]
    Promote(PromoteArgs),
    /// Promotions: list them (approving needs a signed-in user: API or console).
    #[command(
        subcommand,
        after_help = "Example:\n  icpd promotion list --status pending"
    )]
    Promotion(PromotionCommand),
    /// Registered runtimes.
    #[command(subcommand, after_help = "Example:\n  icpd runtime show 3f2a9c1e")]
    Runtime(RuntimeCommand),
    /// Micro Integrator runtimes: their artifacts, and desired state for
    /// artifacts and loggers (a running server carries it out).
    #[command(
        subcommand,
        after_help = "Example:\n  icpd mi set --env dev --project shop --integration orders proxy-service/StockQuoteProxy --state disabled"
    )]
    Mi(MiCommand),
    /// Users of the management API and console.
    #[command(
        subcommand,
        after_help = "Example:\n  printf '%s\\n' \"$PASSWORD\" | icpd user create alice --role Developer"
    )]
    User(UserCommand),
    /// Ingest tokens for log and metric shippers: create, list, revoke.
    #[command(
        subcommand,
        after_help = "Example:\n  icpd ingest-token create --env dev --project shop >> fluent-bit.conf"
    )]
    IngestToken(IngestTokenCommand),
    /// Write a consistent copy of icp.db to FILE, also while the server runs (master.key is not in it).
    #[command(after_help = "Example:\n  icpd backup \"/var/backups/icp-$(date +%F).db\"")]
    Backup {
        /// Where to write the copy; its directory must exist.
        file: PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Replace icp.db with a backup; only while no server runs on the data directory.
    #[command(after_help = "Example:\n  icpd restore /var/backups/icp-2025-01-31.db")]
    Restore {
        /// A file made by `icpd backup`.
        file: PathBuf,
    },
    /// Move an install's database: copy icp.db (and telemetry.db) into an empty PostgreSQL database.
    #[command(
        subcommand,
        after_help = "Example:\n  icpd db copy --to postgres://icp:PASSWORD@db.example.com:5432/icp?sslmode=verify-full&sslrootcert=/etc/icpd/db-ca.pem"
    )]
    Db(DbCommand),
    /// Check the database (integrity, schema version) and that the master key opens every secret.
    #[command(after_help = "Example:\n  icpd check --data-dir /var/lib/icpd")]
    Check,
}

/// `icpd db`.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Copy the data directory's icp.db (and, with --with-telemetry, telemetry.db) into an empty PostgreSQL database and verify it row by row (the server must be stopped).
    #[command(
        after_help = "Example:\n  icpd db copy --data-dir /var/lib/icpd --to postgres://icp:PASSWORD@db.example.com:5432/icp --with-telemetry"
    )]
    Copy {
        /// The PostgreSQL database to fill (postgres://...; see `--database-url` for the form). It must be empty.
        #[arg(long, value_name = "URL")]
        to: String,
        /// Also copy telemetry.db (logs, request records, metric points) into the same database, verified page by page; without it they are left behind, and a server on PostgreSQL starts with no telemetry.
        #[arg(long)]
        with_telemetry: bool,
    },
}

/// Which integration in which environment an `icpd mi` command is about.
#[derive(Debug, clap::Args)]
pub struct MiScopeArgs {
    /// The environment's handle.
    #[arg(long)]
    env: String,
    /// The project's handle.
    #[arg(long)]
    project: String,
    /// The integration's handle.
    #[arg(long)]
    integration: String,
}

#[derive(Debug, Subcommand)]
pub enum MiCommand {
    /// The MI artifacts of an integration in an environment, with each
    /// one's state across replicas and whether they are in sync.
    #[command(
        after_help = "Example:\n  icpd mi artifacts --env dev --project shop --integration orders --kind proxy-service"
    )]
    Artifacts {
        #[command(flatten)]
        scope: MiScopeArgs,
        /// Only this kind (api, proxy-service, endpoint, inbound-endpoint,
        /// sequence, task, template, message-store, message-processor,
        /// local-entry, data-service, carbon-app, data-source, connector,
        /// registry-resource).
        #[arg(long)]
        kind: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Set what an MI artifact should be (state, tracing, statistics) on
    /// every replica or the given ones; the running server calls each
    /// runtime's Management API until its heartbeats report it.
    #[command(
        after_help = "Example:\n  icpd mi set --env dev --project shop --integration orders proxy-service/StockQuoteProxy --state disabled --tracing enabled"
    )]
    Set {
        #[command(flatten)]
        scope: MiScopeArgs,
        /// The artifact as KIND/NAME, e.g. proxy-service/StockQuoteProxy.
        artifact: String,
        /// enabled or disabled.
        #[arg(long)]
        state: Option<String>,
        /// enabled or disabled.
        #[arg(long)]
        tracing: Option<String>,
        /// enabled or disabled.
        #[arg(long)]
        statistics: Option<String>,
        /// Only this runtime (repeatable; any unique start of its id).
        #[arg(long = "runtime")]
        runtimes: Vec<String>,
    },
    /// Set an MI logger's level on every replica or the given ones.
    #[command(
        after_help = "Example:\n  icpd mi logger --env dev --project shop --integration orders org-apache-synapse --level DEBUG"
    )]
    Logger {
        #[command(flatten)]
        scope: MiScopeArgs,
        /// The logger's name as MI lists it (GET /management/logging).
        logger: String,
        /// OFF, TRACE, DEBUG, INFO, WARN, ERROR or FATAL.
        #[arg(long)]
        level: String,
        /// Only this runtime (repeatable; any unique start of its id).
        #[arg(long = "runtime")]
        runtimes: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input (one line),
    /// so it never appears in `ps` or in shell history.
    #[command(
        after_help = "Example:\n  printf '%s\\n' \"$PASSWORD\" | icpd user create alice --role Developer --must-change-password"
    )]
    Create {
        /// The name the user signs in with.
        name: String,
        /// Role at organization scope: Super Admin, Admin, Developer, Project Admin, Viewer or a custom role.
        #[arg(long)]
        role: Option<String>,
        /// Read the password from standard input: the default and only way,
        /// so it never appears in `ps` or shell history (the flag is optional).
        #[arg(long)]
        password_stdin: bool,
        /// Require a password change at first login.
        #[arg(long)]
        must_change_password: bool,
    },
    /// Give a user a new random password that must be changed at the next login.
    #[command(after_help = "Example:\n  icpd user reset-password alice")]
    ResetPassword {
        /// The user's sign-in name.
        name: String,
    },
    /// List users with their roles and where each applies.
    #[command(after_help = "Example:\n  icpd user list --json")]
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Runtime (bridge) listener address [default: 0.0.0.0:9445].
    #[arg(long, env = "ICP_RUNTIME_LISTEN", value_name = "ADDR")]
    pub runtime_listen: Option<String>,
    /// Management listener address [default: 127.0.0.1:9446].
    #[arg(long, env = "ICP_MANAGEMENT_LISTEN", value_name = "ADDR")]
    pub management_listen: Option<String>,
    /// Serve plain HTTP instead of HTTPS.
    #[arg(long, env = "ICP_NO_TLS")]
    pub no_tls: bool,
    /// PEM certificate chain to serve instead of the generated one.
    #[arg(long, env = "ICP_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "ICP_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Mark a runtime OFFLINE after this long without a heartbeat [default: 30s].
    #[arg(long, env = "ICP_HEARTBEAT_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub heartbeat_timeout: Option<std::time::Duration>,
}

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Print the certificate path and its SHA-256 fingerprint (for the bridge's `cert` setting).
    #[command(after_help = "Example:\n  icpd cert show --data-dir /var/lib/icpd")]
    Show,
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Create a secret and print the Config.toml snippet that carries it (shown only once).
    #[command(after_help = "Example:\n  \
        icpd secret create --env dev --project shop --integration cart --ttl 90d >> Config.toml")]
    Create {
        /// Environment the secret belongs to.
        #[arg(long)]
        env: String,
        /// Bind the secret to this project (with --integration); created if missing.
        #[arg(long, requires = "integration")]
        project: Option<String>,
        /// Bind the secret to this integration (with --project); created if missing.
        #[arg(long, requires = "project")]
        integration: Option<String>,
        /// Runtime type of an integration created by --integration.
        #[arg(long = "type", value_parser = ["BI", "MI"], default_value = "BI")]
        runtime_type: String,
        /// Let the secret expire after this long (e.g. 30d, 12h).
        #[arg(long, value_parser = parse_duration)]
        ttl: Option<std::time::Duration>,
        /// The URL runtimes reach icpd at [default: from runtime_listen].
        #[arg(long, value_name = "URL")]
        server_url: Option<String>,
        /// Print {"keyId", "secret", "environment", ...} instead of the snippet.
        #[arg(long)]
        json: bool,
    },
    /// List secrets (never their key material).
    #[command(after_help = "Example:\n  icpd secret list")]
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a secret: runtimes using it are refused from their next request.
    #[command(after_help = "Example:\n  icpd secret revoke 3f2a9c1e")]
    Revoke {
        /// The 8-character key id (the part before the dot).
        key_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum IngestTokenCommand {
    /// Create a token for a shipper (Fluent Bit, an OpenTelemetry
    /// collector) and print a Fluent Bit [OUTPUT] section carrying it (shown only once).
    #[command(after_help = "Example:\n  \
        icpd ingest-token create --env prod --project shop --name fluent-bit-prod >> fluent-bit.conf")]
    Create {
        /// Environment the token's records belong to.
        #[arg(long)]
        env: String,
        /// Scope the token to this project.
        #[arg(long)]
        project: Option<String>,
        /// Scope the token to this integration (with --project).
        #[arg(long, requires = "project")]
        integration: Option<String>,
        /// A name to recognise it by [default: the scope, e.g. dev/shop/orders].
        #[arg(long)]
        name: Option<String>,
        /// The URL shippers reach icpd's runtime listener at [default: from runtime_listen].
        #[arg(long, value_name = "URL")]
        server_url: Option<String>,
        /// Print {"id", "token", "environment", ...} instead of the snippet.
        #[arg(long)]
        json: bool,
    },
    /// List ingest tokens (never the tokens themselves).
    #[command(after_help = "Example:\n  icpd ingest-token list")]
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: shippers using it are refused from their next request.
    #[command(after_help = "Example:\n  icpd ingest-token revoke 3f2a9c1e")]
    Revoke {
        /// The token's id (the 8 characters after icpi_).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// List environments.
    #[command(after_help = "Example:\n  icpd env list")]
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Create an environment.
    #[command(after_help = "Example:\n  icpd env create \"Staging EU\" --data-plane eu-west")]
    Create {
        /// Name; its handle is the name in lower case with dashes.
        name: String,
        /// Mark the environment critical (production-like).
        #[arg(long)]
        critical: bool,
        /// The data plane it sits on [default: default].
        #[arg(long, value_name = "HANDLE")]
        data_plane: Option<String>,
        /// Print the created environment as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DataPlaneCommand {
    /// List data planes with their environments and health.
    #[command(after_help = "Example:\n  icpd data-plane list")]
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Register a data plane.
    #[command(
        after_help = "Example:\n  icpd data-plane create \"EU West\" --kind cloud --region eu-west-1"
    )]
    Create {
        /// Name; its handle is the name in lower case with dashes.
        name: String,
        /// cloud or private.
        #[arg(long, value_parser = ["cloud", "private"])]
        kind: String,
        /// Where it is, e.g. eu-west-1 or a site name.
        #[arg(long)]
        region: Option<String>,
        /// A sentence for people: what runs there, who looks after it.
        #[arg(long)]
        description: Option<String>,
        /// Print the created data plane as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print an integration's current Config.toml values for an environment,
    /// secrets decrypted, as `GET /icp/config` serves them (needs the master key).
    #[command(after_help = "Example:\n  \
        icpd config render --env dev --project shop --integration cart > Config.toml")]
    Render {
        /// The environment whose values to print.
        #[arg(long)]
        env: String,
        /// The integration's project.
        #[arg(long)]
        project: String,
        /// The integration.
        #[arg(long)]
        integration: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct PromoteArgs {
    /// The integration's project.
    #[arg(long)]
    pub project: String,
    /// The integration to promote.
    #[arg(long)]
    pub integration: String,
    /// The environment to promote from (its current deployment record and configuration).
    #[arg(long)]
    pub from: String,
    /// The environment to promote to: the one after --from in the project's pipeline.
    #[arg(long)]
    pub to: String,
    /// Override a value in the target: `section.key=value` (the value is
    /// read as JSON when it parses, else as a string; no dot: a top-level key).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub set: Vec<String>,
    /// Override a secret value in the target: `section.key`; the values are
    /// read from standard input, one line per --set-secret, in order.
    #[arg(long = "set-secret", value_name = "SECTION.KEY")]
    pub set_secret: Vec<String>,
    /// Why: shown to the approvers and kept with the promotion.
    #[arg(long)]
    pub comment: Option<String>,
    /// The user the promotion is requested as (with that user's permissions;
    /// the CLI has no sign-in, and that user cannot approve it).
    #[arg(long = "as", value_name = "USER")]
    pub as_user: String,
    /// Print the promotion as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum PromotionCommand {
    /// List promotions, newest first.
    #[command(after_help = "Example:\n  icpd promotion list --status pending")]
    List {
        /// pending, applied, rejected, cancelled or failed.
        #[arg(long)]
        status: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RuntimeCommand {
    /// List runtimes.
    #[command(after_help = "Example:\n  icpd runtime list --env prod --status OFFLINE")]
    List {
        /// Only runtimes in this environment.
        #[arg(long)]
        env: Option<String>,
        /// Only runtimes of this project's integrations.
        #[arg(long)]
        project: Option<String>,
        /// Only runtimes of this integration.
        #[arg(long)]
        integration: Option<String>,
        /// RUNNING or OFFLINE.
        #[arg(long, value_parser = parse_status)]
        status: Option<Status>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one runtime: node info, artifacts, log levels, status history.
    #[command(after_help = "Example:\n  icpd runtime show 3f2a9c1e")]
    Show {
        /// The runtime's id, or any start of it that no other runtime's id
        /// has (the console shows the first 8 characters).
        runtime_id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn parse_status(s: &str) -> std::result::Result<Status, String> {
    Status::parse(s).ok_or_else(|| format!("'{s}' is not a status; use RUNNING or OFFLINE"))
}

impl Cli {
    /// Whether this invocation runs the server (which logs at info by default).
    pub fn is_serve(&self) -> bool {
        matches!(self.command, Command::Serve(_))
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    let mut overrides = Overrides {
        data_dir: cli.data_dir.clone(),
        database_url: cli.database_url.clone(),
        ..Overrides::default()
    };
    if let Command::Serve(a) = &cli.command {
        overrides.runtime_listen = a.runtime_listen.clone();
        overrides.management_listen = a.management_listen.clone();
        overrides.no_tls = a.no_tls;
        overrides.tls_cert = a.tls_cert.clone();
        overrides.tls_key = a.tls_key.clone();
        overrides.heartbeat_timeout = a.heartbeat_timeout;
    }
    let cfg = Config::load(cli.config.as_deref(), overrides)?;
    // Every command but serve and restore (which take their own locks)
    // holds the shared data lock while it runs, so a restore never swaps
    // the database under it.
    let _use = match &cli.command {
        Command::Serve(_) | Command::Restore { .. } | Command::Db(_) => None,
        _ => crate::daemon::DataUseLock::shared(&cfg.data_dir)?,
    };
    match cli.command {
        Command::Serve(_) => crate::daemon::run(&cfg),
        Command::Cert(CertCommand::Show) => cert_show(&cfg),
        Command::Secret(c) => secret(&cfg, c),
        Command::Env(c) => env(&cfg, c),
        Command::DataPlane(c) => data_plane(&cfg, c),
        Command::Config(c) => configuration(&cfg, c),
        Command::Promote(a) => promote(&cfg, a),
        Command::Promotion(c) => promotion(&cfg, c),
        Command::Runtime(c) => runtime(&cfg, c),
        Command::Mi(c) => mi(&cfg, c),
        Command::User(c) => user(&cfg, c),
        Command::IngestToken(c) => ingest_token(&cfg, c),
        Command::Backup { file, force } => {
            crate::backup::backup_command(&cfg, &file, force)?;
            // A copy of every secret's sealed material left the server: on record.
            audit(
                &open_store(&cfg)?,
                "backup",
                &format!("file {}", file.display()),
            );
            Ok(())
        }
        Command::Restore { file } => crate::backup::restore_command(&cfg, &file, now_millis()),
        Command::Check => crate::backup::check_command(&cfg),
        Command::Db(DbCommand::Copy { to, with_telemetry }) => {
            crate::backup::db_copy_command(&cfg, &to, with_telemetry)
        }
    }
}

/// `cli:USER`: who runs an admin command: `$USER`, else the real user's
/// name from the password database (what `id -un` prints), else
/// `cli:uid=N` for a user id without a name.
fn cli_actor() -> String {
    let who = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(real_user_name)
        // SAFETY: getuid cannot fail and touches no memory of ours.
        .unwrap_or_else(|| format!("uid={}", unsafe { libc::getuid() }));
    format!("cli:{who}")
}

/// The login name of the process's real user id, from the password database.
fn real_user_name() -> Option<String> {
    // SAFETY: getuid cannot fail and touches no memory of ours.
    let uid = unsafe { libc::getuid() };
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: an all-zero passwd is a valid value (null pointers, zero ids).
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: getpwuid_r writes only into `entry`, `found` and the
        // `buf.len()` bytes of `buf`, which outlive the call; `entry`'s
        // strings point into `buf`, read below while `buf` lives.
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                &mut entry,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut found,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || found.is_null() || entry.pw_name.is_null() {
            return None;
        }
        // SAFETY: on success pw_name is a NUL-terminated string in `buf`.
        let name = unsafe { std::ffi::CStr::from_ptr(entry.pw_name) };
        let name = name.to_string_lossy().into_owned();
        return (!name.is_empty()).then_some(name);
    }
}

/// Records an admin command in the audit log, as the API does for its
/// changes. The actor is the operating-system user running the command.
fn audit(store: &Store, action: &str, target: &str) {
    let actor = cli_actor();
    let action = format!("icpd {action}");
    let entry = NewAuditEntry {
        at: now_millis(),
        actor: &actor,
        action: &action,
        target,
        outcome: "ok",
        client: "local",
        reason: "",
    };
    if let Err(e) = store.write(|tx| tx.insert_audit(&entry)) {
        eprintln!("warning: could not write the audit entry: {e}");
    }
}

fn open_store(cfg: &Config) -> Result<Store> {
    cfg.open_store()
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Internal(e.to_string()))?;
    println!("{text}");
    Ok(())
}

/// Prints rows as left-aligned columns under a header: every table the
/// command line prints goes through here.
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    print!("{}", table(header, rows));
}

/// Rows as left-aligned columns under a header, two spaces apart, each
/// column as wide as its widest cell in characters. Control characters
/// (which a runtime could report in a name) are shown escaped, so they
/// neither break the alignment nor reach the terminal.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let clean = |cell: &str| -> String {
        let mut out = String::with_capacity(cell.len());
        for c in cell.chars() {
            if c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        out
    };
    let header: Vec<String> = header.iter().map(|h| clean(h)).collect();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| clean(c)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            // `{:<w$}` pads to w characters.
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn cert_show(cfg: &Config) -> Result<()> {
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
        Error::io(
            format!("creating data directory {}", cfg.data_dir.display()),
            e,
        )
    })?;
    let material = tls::load(&cfg.tls, &cfg.data_dir)?;
    let path = std::fs::canonicalize(&material.cert_path).unwrap_or(material.cert_path.clone());
    println!("certificate: {}", path.display());
    println!(
        "sha256 fingerprint: {}",
        tls::fingerprint(&material.cert_path)?
    );
    if !cfg.tls.enabled {
        eprintln!("note: TLS is turned off in this configuration; the listeners serve plain HTTP");
    }
    Ok(())
}

fn default_server_url(cfg: &Config) -> String {
    let port = cfg
        .runtime_listen
        .parse::<std::net::SocketAddr>()
        .map(|a| a.port())
        .unwrap_or(9445);
    public_runtime_url(cfg, port)
}

/// The certificate a snippet tells its reader to trust (absolute), when
/// the listeners speak TLS.
fn snippet_cert(cfg: &Config) -> Option<String> {
    let cert = tls::cert_paths(&cfg.tls, &cfg.data_dir).0;
    let cert = std::fs::canonicalize(&cert).unwrap_or(cert);
    cfg.tls.enabled.then(|| cert.display().to_string())
}

/// The URL runtimes should use for the runtime listener: its address, with
/// `localhost` for a wildcard address, and the given (bound) port.
pub fn public_runtime_url(cfg: &Config, port: u16) -> String {
    let scheme = if cfg.tls.enabled { "https" } else { "http" };
    let ip = cfg
        .runtime_listen
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip())
        .unwrap_or_else(|_| [127, 0, 0, 1].into());
    let host = match ip {
        ip if ip.is_unspecified() => "localhost".to_string(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        ip => ip.to_string(),
    };
    format!("{scheme}://{host}:{port}")
}

fn secret(cfg: &Config, c: SecretCommand) -> Result<()> {
    let store = open_store(cfg)?;
    let now = now_millis();
    match c {
        SecretCommand::Create {
            env,
            project,
            integration,
            runtime_type,
            ttl,
            server_url,
            json,
        } => {
            std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
                Error::io(
                    format!("creating data directory {}", cfg.data_dir.display()),
                    e,
                )
            })?;
            let key = MasterKey::load(&cfg.data_dir, true)?;
            let req = NewSecret {
                environment: env,
                binding: project.zip(integration),
                runtime_type: Some(runtime_type.clone()),
                ttl,
            };
            let created = secrets::create(&store, &key, &req, now)?;
            audit(
                &store,
                "secret create",
                &format!("secret {}", created.record.key_id),
            );
            if json {
                let mut v = serde_json::to_value(&created.record)
                    .map_err(|e| Error::Internal(e.to_string()))?;
                v["secret"] = created.secret.clone().into();
                return print_json(&v);
            }
            let url = server_url.unwrap_or_else(|| default_server_url(cfg));
            let cert = snippet_cert(cfg);
            let mi = runtime_type == "MI";
            eprintln!(
                "Secret {} created for environment '{}'{}. Add this to the {};\nthe secret is shown only this once.\n",
                created.record.key_id,
                created.record.environment,
                match (&created.record.project, &created.record.integration) {
                    (Some(p), Some(i)) => format!(", bound to {p}/{i}"),
                    _ => ", unbound (it binds to the first integration that uses it)".into(),
                },
                if mi {
                    "Micro Integrator's <MI_HOME>/conf/deployment.toml"
                } else {
                    "integration's Config.toml"
                }
            );
            let snippet = if mi {
                secrets::mi_config_snippet(&created, &url, cert.as_deref())
            } else {
                secrets::config_snippet(&created, &url, cert.as_deref())
            };
            print!("{snippet}");
            Ok(())
        }
        SecretCommand::List { json } => {
            let list = secrets::list(&store, now)?;
            if json {
                return print_json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|s| {
                    vec![
                        s.key_id.clone(),
                        s.environment.clone(),
                        match (&s.project, &s.integration) {
                            (Some(p), Some(i)) => format!("{p}/{i}"),
                            _ => "(unbound)".into(),
                        },
                        s.status.to_string(),
                        rfc3339(s.created_at),
                        s.expires_at.map(rfc3339).unwrap_or_else(|| "never".into()),
                    ]
                })
                .collect();
            print_table(
                &[
                    "KEY ID",
                    "ENV",
                    "INTEGRATION",
                    "STATUS",
                    "CREATED",
                    "EXPIRES",
                ],
                &rows,
            );
            Ok(())
        }
        SecretCommand::Revoke { key_id } => {
            let r = secrets::revoke(&store, &key_id, now)?;
            audit(&store, "secret revoke", &format!("secret {}", r.key_id));
            println!(
                "secret {} revoked; runtimes using it are refused from their next request",
                r.key_id
            );
            Ok(())
        }
    }
}

fn ingest_token(cfg: &Config, c: IngestTokenCommand) -> Result<()> {
    let store = open_store(cfg)?;
    let now = now_millis();
    match c {
        IngestTokenCommand::Create {
            env,
            project,
            integration,
            name,
            server_url,
            json,
        } => {
            let req = ingest_tokens::NewIngestToken {
                name,
                environment: env,
                project,
                integration,
            };
            let scope = req.scope(&store)?;
            let (made, token) = ingest_tokens::create(&store, &req, &scope, &cli_actor(), now)?;
            audit(
                &store,
                "ingest-token create",
                &format!("ingest token {}", made.id),
            );
            if json {
                let mut v =
                    serde_json::to_value(&made).map_err(|e| Error::Internal(e.to_string()))?;
                v["token"] = token.into();
                return print_json(&v);
            }
            let url = server_url.unwrap_or_else(|| default_server_url(cfg));
            let cert = snippet_cert(cfg);
            let scope = ingest_tokens::scope_path(
                &made.environment,
                made.project.as_deref(),
                made.integration.as_deref(),
            );
            eprintln!(
                "Ingest token {} ({:?}) created for {scope}: records sent with it are attributed there. \
                 It is shown only this once.\n\
                 Shippers send it as 'Authorization: Bearer <token>'. A Fluent Bit output for it:\n",
                made.id, made.name
            );
            print!(
                "{}",
                ingest_tokens::fluent_bit_snippet(&token, &url, cert.as_deref())
            );
            Ok(())
        }
        IngestTokenCommand::List { json } => {
            let list = ingest_tokens::list(&store)?;
            if json {
                return print_json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|t| {
                    vec![
                        t.id.clone(),
                        t.name.clone(),
                        t.environment.clone(),
                        match (&t.project, &t.integration) {
                            (Some(p), Some(i)) => format!("{p}/{i}"),
                            (Some(p), None) => format!("{p}/*"),
                            _ => "*".into(),
                        },
                        t.status.to_string(),
                        t.created_by.clone(),
                        rfc3339(t.created_at),
                        t.last_used_at
                            .map(|at| ago(at, now))
                            .unwrap_or_else(|| "never".into()),
                    ]
                })
                .collect();
            print_table(
                &[
                    "ID",
                    "NAME",
                    "ENV",
                    "SCOPE",
                    "STATUS",
                    "CREATED BY",
                    "CREATED",
                    "LAST USED",
                ],
                &rows,
            );
            Ok(())
        }
        IngestTokenCommand::Revoke { id } => {
            let t = ingest_tokens::revoke(&store, &id, now)?;
            audit(
                &store,
                "ingest-token revoke",
                &format!("ingest token {}", t.id),
            );
            println!(
                "ingest token {} revoked; shippers using it are refused from their next request",
                t.id
            );
            Ok(())
        }
    }
}

fn env(cfg: &Config, c: EnvCommand) -> Result<()> {
    let store = open_store(cfg)?;
    match c {
        EnvCommand::List { json } => {
            let envs = store.read(|tx| tx.all_environments())?;
            if json {
                return print_json(&envs);
            }
            let rows: Vec<Vec<String>> = envs
                .iter()
                .map(|e| {
                    vec![
                        e.handle.clone(),
                        e.name.clone(),
                        if e.critical { "yes" } else { "no" }.into(),
                        e.data_plane.clone(),
                        rfc3339(e.created_at),
                    ]
                })
                .collect();
            print_table(
                &["HANDLE", "NAME", "CRITICAL", "DATA PLANE", "CREATED"],
                &rows,
            );
            Ok(())
        }
        EnvCommand::Create {
            name,
            critical,
            data_plane,
            json,
        } => {
            let created = catalog::create_environment(
                &store,
                &name,
                critical,
                data_plane.as_deref(),
                now_millis(),
            )?;
            let e = &created.environment;
            audit(&store, "env create", &format!("environment {}", e.handle));
            if json {
                return print_json(&created);
            }
            println!(
                "environment '{}' created{}; {}",
                e.handle,
                if e.critical { " (critical)" } else { "" },
                created.placement.message
            );
            Ok(())
        }
    }
}

fn data_plane(cfg: &Config, c: DataPlaneCommand) -> Result<()> {
    let store = open_store(cfg)?;
    match c {
        DataPlaneCommand::List { json } => {
            let list = crate::data_planes::list(&store)?;
            if json {
                return print_json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|d| {
                    vec![
                        d.handle.clone(),
                        d.name.clone(),
                        d.kind.clone(),
                        if d.region.is_empty() {
                            "-".into()
                        } else {
                            d.region.clone()
                        },
                        if d.environments.is_empty() {
                            "-".into()
                        } else {
                            d.environments.join(",")
                        },
                        format!(
                            "{} ({} running, {} offline)",
                            d.health.status, d.health.running, d.health.offline
                        ),
                    ]
                })
                .collect();
            print_table(
                &["HANDLE", "NAME", "KIND", "REGION", "ENVIRONMENTS", "HEALTH"],
                &rows,
            );
            Ok(())
        }
        DataPlaneCommand::Create {
            name,
            kind,
            region,
            description,
            json,
        } => {
            let new = crate::data_planes::NewDataPlane {
                name,
                handle: None,
                kind,
                region,
                description,
            };
            let d = crate::data_planes::create(&store, &new, now_millis())?;
            audit(
                &store,
                "data-plane create",
                &format!("data plane {}", d.handle),
            );
            if json {
                return print_json(&d);
            }
            println!("data plane '{}' created ({})", d.handle, d.kind);
            Ok(())
        }
    }
}

fn configuration(cfg: &Config, c: ConfigCommand) -> Result<()> {
    let store = open_store(cfg)?;
    match c {
        ConfigCommand::Render {
            env,
            project,
            integration,
        } => {
            let scope = crate::commands::resolve(&store, &project, &integration, &env)?;
            let key = MasterKey::load(&cfg.data_dir, false)?;
            let rendered = crate::configuration::render(&store, &key, &scope)?;
            // Secrets were decrypted and left icpd: on record, like a backup.
            audit(
                &store,
                "config render",
                &format!(
                    "config {}/{}@{} revision {}",
                    scope.project, scope.integration, scope.environment, rendered.revision
                ),
            );
            eprintln!(
                "# {}/{} in '{}', configuration revision {} (secrets in clear: keep this output private)",
                scope.project, scope.integration, scope.environment, rendered.revision
            );
            print!("{}", rendered.toml);
            Ok(())
        }
    }
}

/// `section.key` as a place; no dot: a top-level key.
fn value_place(text: &str) -> (String, String) {
    match text.rsplit_once('.') {
        Some((section, key)) => (section.to_string(), key.to_string()),
        None => (String::new(), text.to_string()),
    }
}

fn promote(cfg: &Config, a: PromoteArgs) -> Result<()> {
    use crate::promotion::{NewPromotion, Override};
    let store = open_store(cfg)?;
    let user = store
        .read(|tx| tx.user_by_name(&a.as_user))?
        .ok_or_else(|| Error::NotFound(format!("no user '{}'", a.as_user)))?;
    let principal = crate::auth::principal(&store, &user)?;
    let mut overrides = Vec::new();
    for s in &a.set {
        let (place, text) = s
            .split_once('=')
            .ok_or_else(|| Error::BadRequest(format!("--set {s}: expected SECTION.KEY=VALUE")))?;
        let (section, key) = value_place(place);
        let value =
            serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.into()));
        overrides.push(Override {
            section,
            key,
            value,
            value_type: None,
            secret: Some(false),
        });
    }
    let mut stdin = std::io::stdin().lines();
    for place in &a.set_secret {
        let line = stdin
            .next()
            .transpose()
            .map_err(|e| Error::io("reading a secret value from standard input", e))?
            .ok_or_else(|| {
                Error::BadRequest(format!(
                    "--set-secret {place}: no value on standard input (one line per --set-secret)"
                ))
            })?;
        let (section, key) = value_place(place);
        overrides.push(Override {
            section,
            key,
            value: serde_json::Value::String(line),
            value_type: None,
            secret: Some(true),
        });
    }
    let new = NewPromotion {
        from: a.from,
        to: a.to,
        overrides,
        comment: a.comment,
    };
    let key = MasterKey::load(&cfg.data_dir, false)?;
    let p = crate::promotion::request(
        &store,
        &key,
        &principal,
        &a.project,
        &a.integration,
        &new,
        now_millis(),
    )?;
    audit(&store, "promote", &crate::promotion::audit_target(&p));
    if a.json {
        return print_json(&p);
    }
    match p.status.as_str() {
        "applied" => println!(
            "promotion {}: {}/{} {} -> {} applied ({}, configuration revision {}); runtimes in '{}' take it when they restart",
            p.id,
            p.project,
            p.integration,
            p.from,
            p.to,
            p.deployment.version,
            p.applied_revision.map_or("unchanged".into(), |r| r.to_string()),
            p.to
        ),
        _ => println!(
            "promotion {}: {}/{} {} -> {} is {}, waiting for {} approval(s) by users other than {} (API or console)",
            p.id, p.project, p.integration, p.from, p.to, p.status, p.required_approvals, p.requested_by
        ),
    }
    Ok(())
}

fn promotion(cfg: &Config, c: PromotionCommand) -> Result<()> {
    let store = open_store(cfg)?;
    match c {
        PromotionCommand::List { status, json } => {
            let status = status
                .as_deref()
                .map(crate::promotion::Status::parse)
                .transpose()?;
            // The CLI runs with the data directory's rights: it sees every promotion.
            let everyone = crate::access::Principal {
                user_id: 0,
                username: cli_actor(),
                grants: vec![crate::access::Grant {
                    scope: crate::access::Scope::Organization,
                    permissions: [crate::access::Permission::IntegrationView].into(),
                }],
                must_change_password: false,
            };
            let page = crate::catalog::Keyset {
                after: None,
                limit: 500,
            };
            let l = crate::promotion::list(&store, &everyone, None, status, &page)?;
            if json {
                return print_json(&l.items);
            }
            let rows: Vec<Vec<String>> = l
                .items
                .iter()
                .map(|p| {
                    vec![
                        p.id.to_string(),
                        p.status.to_string(),
                        format!("{}/{}", p.project, p.integration),
                        p.from.clone(),
                        p.to.clone(),
                        p.deployment.version.clone(),
                        p.requested_by.clone(),
                        rfc3339(p.requested_at),
                    ]
                })
                .collect();
            print_table(
                &[
                    "ID",
                    "STATUS",
                    "INTEGRATION",
                    "FROM",
                    "TO",
                    "VERSION",
                    "REQUESTED BY",
                    "REQUESTED AT",
                ],
                &rows,
            );
            Ok(())
        }
    }
}

fn runtime(cfg: &Config, c: RuntimeCommand) -> Result<()> {
    let store = open_store(cfg)?;
    let now = now_millis();
    match c {
        RuntimeCommand::List {
            env,
            project,
            integration,
            status,
            json,
        } => {
            let list = runtimes::list(
                &store,
                &RuntimeFilter {
                    environment: env,
                    project,
                    integration,
                    status,
                },
            )?;
            if json {
                return print_json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|r| {
                    vec![
                        r.runtime_id.clone(),
                        r.name.clone().unwrap_or_else(|| "-".into()),
                        r.status.as_str().into(),
                        r.environment.clone(),
                        format!("{}/{}", r.project, r.integration),
                        r.runtime_type.clone(),
                        ago(r.last_heartbeat, now),
                    ]
                })
                .collect();
            print_table(
                &[
                    "RUNTIME ID",
                    "NAME",
                    "STATUS",
                    "ENV",
                    "INTEGRATION",
                    "TYPE",
                    "LAST HEARTBEAT",
                ],
                &rows,
            );
            Ok(())
        }
        RuntimeCommand::Show { runtime_id, json } => {
            let d = runtimes::show(&store, &runtimes::resolve_id(&store, &runtime_id)?)?;
            if json {
                return print_json(&d);
            }
            let r = &d.runtime;
            println!("Runtime       {}", r.runtime_id);
            println!("Name          {}", r.name.as_deref().unwrap_or("-"));
            println!("Status        {}", r.status.as_str());
            println!(
                "Integration   {}/{} ({})",
                r.project, r.integration, r.runtime_type
            );
            println!("Environment   {}", r.environment);
            println!("Version       {}", r.version.as_deref().unwrap_or("-"));
            if let Some(ro) = &r.rollout {
                if let Some(deployed) = &ro.deployed_version {
                    println!(
                        "Deployed      {deployed}{}",
                        if ro.version_mismatch == Some(true) {
                            "  (differs from the version it reports)"
                        } else {
                            ""
                        }
                    );
                }
                if let Some(current) = ro.current_config_revision {
                    println!(
                        "Config        revision {} fetched{}, current {current}{}",
                        ro.config_revision
                            .map(|n| n.to_string())
                            .unwrap_or_else(|| "none".into()),
                        ro.config_fetched_at
                            .map(|at| format!(" {}", ago(at, now)))
                            .unwrap_or_default(),
                        if ro.config_outdated == Some(true) {
                            " (takes effect after a restart)"
                        } else {
                            ""
                        }
                    );
                }
            }
            println!("Secret        {}", d.secret_key_id);
            println!("Registered    {}", rfc3339(r.registered_at));
            println!(
                "Last seen     {} ({})",
                rfc3339(r.last_heartbeat),
                ago(r.last_heartbeat, now)
            );
            if let serde_json::Value::Object(info) = &d.node_info {
                let rows: Vec<Vec<String>> = info
                    .iter()
                    .map(|(k, v)| {
                        vec![
                            k.clone(),
                            v.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string()),
                        ]
                    })
                    .collect();
                println!("\nNode");
                print_table(&["KEY", "VALUE"], &rows);
            }
            if let Some(mi) = &d.mi_artifacts {
                print_mi_artifacts(d.management.as_ref(), mi);
            } else {
                let dash = |v: Option<&str>| v.unwrap_or("-").to_string();
                let rows: Vec<Vec<String>> = d
                    .artifacts
                    .listeners
                    .iter()
                    .map(|l| {
                        vec![
                            l.name.clone(),
                            dash(l.protocol.as_deref()),
                            dash(l.host.as_deref()),
                            l.port.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                            dash(l.state.as_deref()),
                        ]
                    })
                    .collect();
                println!("\nListeners");
                print_table(&["NAME", "PROTOCOL", "HOST", "PORT", "STATE"], &rows);
                let rows: Vec<Vec<String>> = d
                    .artifacts
                    .services
                    .iter()
                    .map(|s| {
                        let ls: Vec<&str> = s.listeners.iter().map(|l| l.name.as_str()).collect();
                        vec![
                            s.name.clone(),
                            dash(s.base_path.as_deref()),
                            ls.join(","),
                            dash(s.state.as_deref()),
                        ]
                    })
                    .collect();
                println!("\nServices");
                print_table(&["NAME", "BASE PATH", "LISTENERS", "STATE"], &rows);
                let rows: Vec<Vec<String>> = d
                    .artifacts
                    .services
                    .iter()
                    .flat_map(|s| {
                        s.resources
                            .iter()
                            .map(|r| vec![s.name.clone(), r.methods.join(","), r.url.clone()])
                    })
                    .collect();
                println!("\nResources");
                print_table(&["SERVICE", "METHODS", "URL"], &rows);
                let rows: Vec<Vec<String>> = d
                    .log_levels
                    .iter()
                    .map(|(component, level)| vec![component.clone(), level.clone()])
                    .collect();
                println!("\nLog levels");
                print_table(&["COMPONENT", "LEVEL"], &rows);
                let defs = crate::contracts::definitions(&store, &d.runtime.runtime_id)?;
                let rows: Vec<Vec<String>> = defs
                    .iter()
                    .map(|x| {
                        let n = &x.new;
                        vec![
                            n.file_name.clone(),
                            dash(n.service.as_deref()),
                            n.size_bytes.to_string(),
                            rfc3339(x.received_at),
                            n.problem.clone().unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect();
                println!(
                    "\nOpenAPI definitions (Try-It host: {})",
                    dash(d.try_it_host.as_deref())
                );
                print_table(
                    &["FILE", "SERVICE", "BYTES", "RECEIVED", "NOT KEPT BECAUSE"],
                    &rows,
                );
            }
            let rows: Vec<Vec<String>> = d
                .status_history
                .iter()
                .map(|h| vec![rfc3339(h.at), h.status.as_str().into(), h.reason.clone()])
                .collect();
            println!("\nStatus history");
            print_table(&["AT", "STATUS", "REASON"], &rows);
            Ok(())
        }
    }
}

/// An MI runtime's Management API address and its artifacts, one table
/// for all kinds (`runtime show`).
fn print_mi_artifacts(
    management: Option<&crate::mi::ManagementAddress>,
    artifacts: &std::collections::BTreeMap<crate::mi::MiKind, Vec<crate::mi::MiArtifact>>,
) {
    match management {
        Some(m) => println!("\nManagement API  https://{}:{}", m.host, m.port),
        None => println!("\nManagement API  not reported"),
    }
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let rows: Vec<Vec<String>> = artifacts
        .iter()
        .flat_map(|(kind, list)| {
            list.iter().map(move |a| {
                vec![
                    kind.as_str().to_string(),
                    a.name.clone(),
                    dash(&a.state),
                    dash(&a.tracing),
                    dash(&a.statistics),
                    dash(&a.carbon_app),
                    dash(&a.error),
                ]
            })
        })
        .collect();
    println!("\nArtifacts");
    print_table(
        &[
            "KIND",
            "NAME",
            "STATE",
            "TRACING",
            "STATISTICS",
            "CARBON APP",
            "ERROR",
        ],
        &rows,
    );
}

fn mi(cfg: &Config, c: MiCommand) -> Result<()> {
    use crate::commands::{Commands, Kind, Request};
    let store = open_store(cfg)?;
    let now = now_millis();
    let scope_of =
        |a: &MiScopeArgs| crate::commands::resolve(&store, &a.project, &a.integration, &a.env);
    let resolve_all = |ids: Vec<String>| -> Result<Option<Vec<String>>> {
        if ids.is_empty() {
            return Ok(None);
        }
        ids.iter()
            .map(|id| runtimes::resolve_id(&store, id))
            .collect::<Result<Vec<_>>>()
            .map(Some)
    };
    // Desired state and PENDING commands land in the database; the
    // running server takes them in within 2 s and carries them out.
    let issue = |scope: &crate::commands::Scope, reqs: Vec<Request>| -> Result<()> {
        let commands = Commands::load(&store, now)?;
        let who = cli_actor();
        let mut rows = Vec::new();
        for req in &reqs {
            let issued = commands.request(&store, scope, req, &who, now)?;
            audit(
                &store,
                "mi set",
                &format!(
                    "{}/{}@{} {} {:?} -> {}",
                    scope.project,
                    scope.integration,
                    scope.environment,
                    req.kind.as_str(),
                    req.artifact,
                    req.value
                ),
            );
            for c in issued.commands {
                rows.push(vec![c.runtime_id, c.action, c.target, c.value]);
            }
        }
        if rows.is_empty() {
            println!("every addressed runtime already reports this; nothing to do");
        } else {
            print_table(&["RUNTIME", "ACTION", "TARGET", "VALUE"], &rows);
            println!("\nIssued; a running icpd carries these out and `icpd mi artifacts` shows when they are in sync.");
        }
        Ok(())
    };
    match c {
        MiCommand::Artifacts { scope, kind, json } => {
            let scope = scope_of(&scope)?;
            let liveness = crate::liveness::Liveness::load(&store, cfg.heartbeat_timeout, now)?;
            let commands = Commands::load(&store, now)?;
            let mut view = crate::mi::view::scope_view(
                &store,
                &liveness,
                &commands,
                &scope,
                crate::mi::view::Only::default(),
            )?;
            if let Some(k) = &kind {
                let k = crate::mi::MiKind::parse_or_refuse(k)?;
                view.artifacts.retain(|a| a.kind == k);
            }
            if json {
                return print_json(&view);
            }
            let agreed = |f: &dyn Fn(&crate::mi::view::OnRuntime) -> Option<String>,
                          a: &crate::mi::view::ArtifactView| {
                let mut seen: Vec<String> = a
                    .runtimes
                    .iter()
                    .map(|r| f(r).unwrap_or_else(|| "-".into()))
                    .collect();
                seen.sort();
                seen.dedup();
                seen.join("|")
            };
            let rows: Vec<Vec<String>> = view
                .artifacts
                .iter()
                .map(|a| {
                    vec![
                        a.kind.as_str().to_string(),
                        a.name.clone(),
                        agreed(&|r| r.state.clone(), a),
                        agreed(&|r| r.tracing.clone(), a),
                        agreed(&|r| r.statistics.clone(), a),
                        a.runtimes.len().to_string(),
                        if a.in_sync { "yes" } else { "no" }.to_string(),
                        a.error.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            print_table(
                &[
                    "KIND",
                    "NAME",
                    "STATE",
                    "TRACING",
                    "STATISTICS",
                    "REPLICAS",
                    "IN SYNC",
                    "ERROR",
                ],
                &rows,
            );
            if kind.is_none() {
                let rows: Vec<Vec<String>> = view
                    .loggers
                    .iter()
                    .map(|l| {
                        let mut levels: Vec<&str> =
                            l.runtimes.iter().map(|r| r.level.as_str()).collect();
                        levels.sort();
                        levels.dedup();
                        vec![
                            l.logger.clone(),
                            levels.join("|"),
                            l.desired_level.clone().unwrap_or_else(|| "-".into()),
                            if l.in_sync { "yes" } else { "no" }.to_string(),
                        ]
                    })
                    .collect();
                println!("\nLoggers (as last read from each runtime)");
                print_table(&["LOGGER", "LEVEL", "DESIRED", "IN SYNC"], &rows);
            }
            Ok(())
        }
        MiCommand::Set {
            scope,
            artifact,
            state,
            tracing,
            statistics,
            runtimes: ids,
        } => {
            let scope = scope_of(&scope)?;
            let (kind, name) = crate::mi::split_artifact_key(&artifact).ok_or_else(|| {
                Error::BadRequest(format!(
                    "'{artifact}' must be KIND/NAME, e.g. proxy-service/StockQuoteProxy; `icpd mi artifacts` lists them"
                ))
            })?;
            let ids = resolve_all(ids)?;
            let mut reqs = Vec::new();
            for (field, value) in [
                (Kind::MiState, state),
                (Kind::MiTracing, tracing),
                (Kind::MiStatistics, statistics),
            ] {
                if let Some(v) = value {
                    reqs.push(Request::mi_artifact(field, kind, name, &v, ids.clone())?);
                }
            }
            if reqs.is_empty() {
                return Err(Error::BadRequest(
                    "give at least one of --state, --tracing, --statistics".into(),
                ));
            }
            issue(&scope, reqs)
        }
        MiCommand::Logger {
            scope,
            logger,
            level,
            runtimes: ids,
        } => {
            let scope = scope_of(&scope)?;
            let req = Request::mi_logger(&logger, &level, resolve_all(ids)?)?;
            issue(&scope, vec![req])
        }
    }
}

fn user(cfg: &Config, c: UserCommand) -> Result<()> {
    let store = open_store(cfg)?;
    let now = now_millis();
    match c {
        UserCommand::Create {
            name,
            role,
            password_stdin: _,
            must_change_password,
        } => {
            let mut password = String::new();
            let read = std::io::stdin()
                .read_line(&mut password)
                .map_err(|e| Error::io("reading the password from standard input", e))?;
            if read == 0 {
                return Err(Error::BadRequest(format!(
                    "no password on standard input; pipe it in, e.g. printf '%s\\n' \"$PASSWORD\" | icpd user create {name}"
                )));
            }
            let password = password.trim_end_matches(['\r', '\n']);
            let u = crate::auth::create_user(
                &store,
                &name,
                password,
                role.as_deref(),
                must_change_password,
                now,
            )?;
            audit(&store, "user create", &format!("user {}", u.username));
            println!(
                "user '{}' created{}",
                u.username,
                role.map(|r| format!(" with role {r}")).unwrap_or_default()
            );
            Ok(())
        }
        UserCommand::ResetPassword { name } => {
            let password = crate::auth::reset_password(&store, &name, now)?;
            audit(&store, "user reset-password", &format!("user {name}"));
            eprintln!("New password for '{name}' (it must be changed at the next login; shown only this once):");
            println!("{password}");
            Ok(())
        }
        UserCommand::List { json } => {
            let users: Vec<crate::auth::User> = store
                .read(|tx| tx.users())?
                .iter()
                .map(|u| crate::auth::User::from_row(u, now))
                .collect();
            let mut roles = crate::auth::held_roles(&store)?;
            if json {
                #[derive(serde::Serialize)]
                struct UserWithRoles {
                    #[serde(flatten)]
                    user: crate::auth::User,
                    roles: Vec<crate::auth::HeldRole>,
                }
                let list: Vec<UserWithRoles> = users
                    .into_iter()
                    .map(|user| UserWithRoles {
                        roles: roles.remove(&user.id).unwrap_or_default(),
                        user,
                    })
                    .collect();
                return print_json(&list);
            }
            let rows: Vec<Vec<String>> = users
                .iter()
                .map(|u| {
                    let held: Vec<String> = roles
                        .get(&u.id)
                        .into_iter()
                        .flatten()
                        .map(|r| match &r.group {
                            Some(g) => match g.strip_prefix("directory:") {
                                Some(d) => {
                                    format!("{} ({}, via directory group {d})", r.role, r.scope)
                                }
                                None => format!("{} ({}, via group {g})", r.role, r.scope),
                            },
                            None => format!("{} ({})", r.role, r.scope),
                        })
                        .collect();
                    vec![
                        u.username.clone(),
                        u.display_name.clone(),
                        u.source.clone(),
                        if u.must_change_password {
                            "must change password"
                        } else if u.locked {
                            "locked"
                        } else {
                            "active"
                        }
                        .into(),
                        if held.is_empty() {
                            "-".into()
                        } else {
                            held.join(", ")
                        },
                        rfc3339(u.created_at),
                    ]
                })
                .collect();
            print_table(
                &["USER", "NAME", "SOURCE", "STATE", "ROLES", "CREATED"],
                &rows,
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::table;

    #[test]
    fn tables_align_by_characters_and_escape_control_characters() {
        let rows = vec![
            vec!["Zoë Åkesson".to_string(), "x".to_string()],
            vec!["evil\u{1b}[31m\nname".to_string(), String::new()],
        ];
        assert_eq!(
            table(&["NAME", "STATE"], &rows),
            "NAME                  STATE\n\
             Zoë Åkesson           x\n\
             evil\\u{1b}[31m\\nname\n"
        );
    }
}
