//! A stand-in for one runtime bridge, for trying icpd without Ballerina.
//!
//! A Ballerina integration that imports `wso2/icp.runtime.bridge` registers
//! itself with the control plane and then keeps reporting in. This example
//! does the same over the same wire protocol (`PROTOCOL.md`), pretending to
//! be one node of the integration `order-create` with one HTTP listener and
//! one service:
//!
//! - at start-up it sends a full heartbeat (everything the runtime is);
//! - then, every `--interval` seconds, a delta heartbeat (just "still here",
//!   with a hash of its state);
//! - it sends a full heartbeat again when the server asks for one, when the
//!   server's list of supported optional fields changes, or after a control
//!   command changed its state;
//! - it applies control commands from the responses as the bridge does:
//!   `START`/`STOP` a listener, `SET_LOGGER_LEVEL` for a component;
//! - a failed call is retried after 5 s and then 10 s, like the bridge.
//!
//! Get a secret for it (it belongs to one environment and, here, to one
//! project and integration):
//!
//! ```text
//! icpd secret create --env dev --project order-service --integration order-create --json
//! ```
//!
//! and run it against the runtime listener (port 9445 unless configured):
//!
//! ```text
//! cargo run --example runtime -- --server https://127.0.0.1:9445 --secret KEYID.MATERIAL
//! ```
//!
//! `icpd runtime list` then shows the runtime as RUNNING. Ctrl-C simply ends
//! the process, just as a crashed runtime would: the server marks it OFFLINE
//! once no heartbeat has arrived for its heartbeat timeout. `--beats N` stops
//! after N heartbeats, for scripts; the exit status is 1 if any heartbeat
//! failed. `--help` lists every flag.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::thread::sleep;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use clap::Parser;
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{json, Value};

use icpd::config::{Config, TokenConfig};
use icpd::http::client::{Client, ClientTls};
use icpd::protocol::token;

/// The bridge's token lifetime; a fresh token is made for every call, so it
/// only has to outlive one request and its retries.
const TOKEN_LIFETIME_S: i64 = 3600;

/// The bridge retries a failed call twice, after these pauses.
const RETRY_DELAYS: [Duration; 2] = [Duration::from_secs(5), Duration::from_secs(10)];

/// The bridge refuses key material shorter than this (as UTF-8 bytes).
const MIN_KEY_MATERIAL: usize = 32;

/// Flags; the defaults are those of the bridge and of the examples in PROTOCOL.md.
#[derive(Debug, Parser)]
#[command(about = "A stand-in for one runtime bridge: heartbeats to icpd, applies its commands")]
struct Args {
    /// icpd's runtime listener (the bridge's `serverUrl`).
    #[arg(long, default_value = "https://localhost:9445")]
    server: String,
    /// `keyId.keyMaterial`, as printed by `icpd secret create`. Prefer the
    /// environment variable: flags are visible to other users in `ps`.
    #[arg(long, env = "ICP_SECRET", hide_env_values = true)]
    secret: String,
    /// Environment handle; it must exist on the server.
    #[arg(long, default_value = "dev")]
    env: String,
    /// Project handle.
    #[arg(long, default_value = "order-service")]
    project: String,
    /// Integration (component) handle.
    #[arg(long, default_value = "order-create")]
    integration: String,
    /// Node name, unique inside integration + environment.
    #[arg(long, default_value = "node-1")]
    name: String,
    /// The runtime's UUID; a random one when not given. A real runtime keeps
    /// it across restarts, so pass the same one to play a restarted node.
    #[arg(long)]
    runtime_id: Option<String>,
    /// Seconds between heartbeats (the bridge's `heartbeatInterval`).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    interval: u64,
    /// Stop after this many heartbeats (default: run until Ctrl-C).
    #[arg(long)]
    beats: Option<u64>,
    /// Verify the server against this PEM certificate (the bridge's `cert`
    /// with `enableSSL = true`).
    #[arg(long, value_name = "PEM", conflicts_with_all = ["insecure", "plain"])]
    cert: Option<PathBuf>,
    /// Do not verify the server certificate (the default, like the bridge's
    /// `enableSSL = false`, so the server's self-signed certificate works).
    #[arg(long, conflicts_with = "plain")]
    insecure: bool,
    /// Plain HTTP, for a server run with `--no-tls` (use an http:// URL).
    #[arg(long)]
    plain: bool,
}

/// A listener of the pretend integration; commands start and stop it.
struct Listener {
    name: String,
    port: u16,
    enabled: bool,
}

/// Everything this runtime reports about itself, and what it knows of the server.
struct Runtime {
    id: String,
    name: String,
    environment: String,
    project: String,
    integration: String,
    listeners: Vec<Listener>,
    /// Component (module) name to level, as `logLevels` in the full heartbeat.
    log_levels: BTreeMap<String, String>,
    /// Optional fields the server said it understands (`supportedHeartbeatFields`);
    /// none until it has answered once, as in the bridge.
    supported_fields: Vec<String>,
}

impl Runtime {
    /// The full heartbeat without `runtimeHash` and `timestamp`: the state
    /// the hash covers. Kept in one place so the hash cannot miss a field.
    fn description(&self) -> Value {
        let listeners: Vec<Value> = self
            .listeners
            .iter()
            .map(|l| {
                json!({"name": l.name, "package": "ballerina/http:2", "protocol": "HTTP",
                       "port": l.port, "host": "0.0.0.0",
                       "state": if l.enabled { "enabled" } else { "disabled" }})
            })
            .collect();
        let mut body = json!({
            "runtimeId": self.id,
            "runtime": self.name,
            "runtimeType": "BI",
            "heartbeatVersion": "v1.0",
            "status": "RUNNING",
            "environment": self.environment,
            "project": self.project,
            "component": self.integration,
            "version": "1.0.0",
            // Made up: the server only stores and displays nodeInfo.
            "nodeInfo": {"platformName": "ballerina", "platformVersion": "2201.13.2",
                         "ballerinaHome": "/opt/bal", "osName": std::env::consts::OS,
                         "osVersion": "unknown"},
            "artifacts": {
                "listeners": listeners,
                "services": [{"name": "service_1", "basePath": "/orders", "package": "acme/orders:1",
                              "listeners": [{"name": "listener_1"}],
                              "resources": [{"methods": ["GET"], "url": "/"},
                                            {"methods": ["POST"], "url": "/{id}"}],
                              "state": "enabled"}],
                "main": {"packageOrg": "acme", "packageName": "orders", "packageVersion": "1.0.0"}
            },
            "logLevels": self.log_levels,
        });
        // Optional fields go out only once the server has listed them; that
        // is why a change of the list calls for a full heartbeat.
        if self.supported_fields.iter().any(|f| f == "tryItHost") {
            body["tryItHost"] = json!("http://localhost:9090");
        }
        body
    }

    /// `runtimeHash`: opaque to the server, which only compares it with the
    /// one it stored. The bridge sends base64 MD5 of its JSON; we avoid MD5
    /// and send base64 SHA-256 of the canonical JSON of the description.
    fn hash(&self) -> String {
        let mut text = String::new();
        canonical_json(&self.description(), &mut text);
        B64.encode(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()))
    }

    fn full_heartbeat(&self) -> Value {
        let mut body = self.description();
        body["runtimeHash"] = json!(self.hash());
        body["timestamp"] = timestamp();
        body
    }

    fn delta_heartbeat(&self) -> Value {
        json!({"runtimeId": self.id, "heartbeatVersion": "v1.0",
               "runtimeHash": self.hash(), "timestamp": timestamp()})
    }

    /// Applies one control command; `Ok(true)` when it changed the state,
    /// which the server only learns from the next full heartbeat.
    fn apply(&mut self, command: &Value) -> Result<bool, String> {
        let action = command["action"].as_str().unwrap_or("");
        match action {
            "START" | "STOP" => {
                let target = command["targetArtifact"]["name"].as_str().unwrap_or("");
                let listener = self
                    .listeners
                    .iter_mut()
                    .find(|l| l.name == target)
                    .ok_or_else(|| format!("no listener named {target:?}"))?;
                let enabled = action == "START";
                let changed = listener.enabled != enabled;
                listener.enabled = enabled;
                Ok(changed)
            }
            "SET_LOGGER_LEVEL" => {
                // The payload is a JSON document inside a JSON string.
                let payload: Value = command["payload"]
                    .as_str()
                    .and_then(|p| serde_json::from_str(p).ok())
                    .ok_or("payload is not a JSON string")?;
                let component = payload["componentName"]
                    .as_str()
                    .filter(|c| !c.is_empty())
                    .ok_or("payload has no componentName")?;
                let level = payload["logLevel"].as_str().unwrap_or("");
                if !["DEBUG", "INFO", "WARN", "ERROR"].contains(&level) {
                    return Err(format!(
                        "log level {level:?} is not DEBUG, INFO, WARN or ERROR"
                    ));
                }
                // `componentPackage` (optional) only narrows down where a real
                // runtime finds the logger; levels are reported per component.
                let old = self.log_levels.insert(component.into(), level.into());
                Ok(old.as_deref() != Some(level))
            }
            other => Err(format!("unknown action {other:?}")),
        }
    }
}

/// Ballerina's `time:Utc`: `[epochSeconds, fractionOfSecond]`.
fn timestamp() -> Value {
    let now = chrono::Utc::now();
    json!([
        now.timestamp(),
        f64::from(now.timestamp_subsec_nanos()) / 1e9
    ])
}

/// JSON with object keys sorted, so the hash does not depend on map order.
fn canonical_json(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(key.as_str()).to_string());
                out.push(':');
                canonical_json(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// A random UUID v4 (8-4-4-4-12), like the id a runtime creates on first start.
fn new_runtime_id() -> Result<String, String> {
    let mut b = [0u8; 16];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| "no randomness available for a runtime id")?;
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

/// The connection and credentials for the heartbeat calls.
struct Bridge {
    client: Client,
    secret: String,
    token: TokenConfig,
}

impl Bridge {
    /// One POST with a fresh token; any non-2xx status or `acknowledged`
    /// other than true is a failure, as in the bridge.
    fn post_once(&mut self, path: &str, body: &Value) -> Result<Value, String> {
        let now_s = chrono::Utc::now().timestamp();
        let bearer = token::issue(&self.secret, &self.token, now_s, TOKEN_LIFETIME_S);
        let resp = self
            .client
            .post_json(path, Some(&bearer), body)
            .map_err(|e| format!("cannot reach the server: {e}"))?;
        let reply = resp.json();
        if !(200..300).contains(&resp.status) {
            // icpd answers {"error":{"message":...}}; the reference server {"message":...}.
            let message = reply["error"]["message"]
                .as_str()
                .or(reply["message"].as_str())
                .unwrap_or("(no message)");
            return Err(format!("status {}: {message}", resp.status));
        }
        if reply["acknowledged"] != json!(true) {
            return Err(format!("status {}: not acknowledged", resp.status));
        }
        Ok(reply)
    }

    /// `post_once` with the bridge's two retries.
    fn post(&mut self, what: &str, path: &str, body: &Value) -> Result<Value, String> {
        let mut delays = RETRY_DELAYS.iter();
        loop {
            match self.post_once(path, body) {
                Ok(reply) => return Ok(reply),
                Err(e) => match delays.next() {
                    Some(d) => {
                        eprintln!("{what} failed: {e}; retrying in {} s", d.as_secs());
                        sleep(*d);
                    }
                    None => return Err(e),
                },
            }
        }
    }
}

/// Acts on a heartbeat response; returns why the next heartbeat must be
/// full, if it must.
fn handle_reply(runtime: &mut Runtime, reply: &Value) -> Option<String> {
    let mut reasons = Vec::new();
    if reply["fullHeartbeatRequired"] == json!(true) {
        reasons.push("the server asks for it".to_string());
    }
    // A missing list means "none".
    let fields: Vec<String> = reply["supportedHeartbeatFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    if fields != runtime.supported_fields {
        reasons.push(format!("supported fields now [{}]", fields.join(", ")));
        runtime.supported_fields = fields;
    }
    for command in reply["commands"].as_array().into_iter().flatten() {
        let action = command["action"].as_str().unwrap_or("?");
        // What the command is about, for the log line: a listener's name, or
        // `component LEVEL` from the logger payload.
        let target = match action {
            "SET_LOGGER_LEVEL" => {
                let payload = command["payload"].as_str().unwrap_or("");
                match serde_json::from_str::<Value>(payload) {
                    Ok(p) => format!(
                        "{} {}",
                        p["componentName"].as_str().unwrap_or("?"),
                        p["logLevel"].as_str().unwrap_or("?")
                    ),
                    Err(_) => payload.to_string(),
                }
            }
            _ => command["targetArtifact"]["name"]
                .as_str()
                .unwrap_or("?")
                .to_string(),
        };
        match runtime.apply(command) {
            Ok(true) => {
                eprintln!("command {action} {target} applied");
                reasons.push(format!("command {action} changed the state"));
            }
            Ok(false) => eprintln!("command {action} {target} applied (nothing to change)"),
            Err(e) => eprintln!("command {action} {target} ignored: {e}"),
        }
    }
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

fn run(args: Args) -> Result<bool, String> {
    // Check the secret as the bridge does, so a typo fails here and not as a 401.
    match args.secret.split_once('.') {
        Some((kid, material)) if !kid.is_empty() && material.len() >= MIN_KEY_MATERIAL => {}
        _ => {
            return Err(format!(
                "--secret must be keyId.keyMaterial with at least {MIN_KEY_MATERIAL} bytes of key material"
            ))
        }
    }
    let id = match args.runtime_id {
        Some(id) if id.len() == 36 => id,
        Some(id) => return Err(format!("--runtime-id {id:?} is not a 36-character UUID")),
        None => new_runtime_id()?,
    };
    let tls = match (args.plain, args.cert) {
        (true, _) => ClientTls::Plain,
        (false, Some(pem)) => ClientTls::Verify(pem),
        (false, None) => ClientTls::Insecure,
    };
    let client = Client::new(&args.server, tls).map_err(|e| e.to_string())?;
    let mut bridge = Bridge {
        client,
        secret: args.secret,
        token: Config::defaults().token,
    };
    let mut runtime = Runtime {
        id,
        name: args.name,
        environment: args.env,
        project: args.project,
        integration: args.integration,
        listeners: vec![Listener {
            name: "listener_1".into(),
            port: 9090,
            enabled: true,
        }],
        log_levels: BTreeMap::from([("acme/orders".to_string(), "INFO".to_string())]),
        supported_fields: Vec::new(),
    };
    eprintln!(
        "runtime {} ({}) reporting to {} every {} s",
        runtime.id, runtime.name, args.server, args.interval
    );

    let mut all_ok = true;
    let mut need_full = true;
    let mut beat = 0u64;
    while args.beats.is_none_or(|n| beat < n) {
        if beat > 0 {
            sleep(Duration::from_secs(args.interval));
        }
        beat += 1;
        let (what, path, body) = if need_full {
            ("full heartbeat", "/icp/heartbeat", runtime.full_heartbeat())
        } else {
            (
                "delta heartbeat",
                "/icp/deltaHeartbeat",
                runtime.delta_heartbeat(),
            )
        };
        match bridge.post(what, path, &body) {
            Ok(reply) => {
                let next_full = handle_reply(&mut runtime, &reply);
                match &next_full {
                    Some(why) => eprintln!("{what} acknowledged (full heartbeat next: {why})"),
                    None => eprintln!("{what} acknowledged"),
                }
                need_full = next_full.is_some();
            }
            Err(e) => {
                // Given up until the next interval. A lost full heartbeat
                // must still be sent; a lost delta changes nothing.
                eprintln!("{what} failed: {e}");
                all_ok = false;
            }
        }
    }
    Ok(all_ok)
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
