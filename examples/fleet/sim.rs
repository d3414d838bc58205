//! What a simulated runtime sends, and the secrets it sends it under:
//! shared by the examples that simulate fleets (`fleet`, `crash`,
//! `hostile`), so that they all speak the bridge protocol the same way.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

/// Ballerina's `time:Utc`: `[epochSeconds, fractionOfSecond]`.
pub fn timestamp() -> Value {
    let now = chrono::Utc::now();
    json!([
        now.timestamp(),
        f64::from(now.timestamp_subsec_nanos()) / 1e9
    ])
}

/// What varies between the full heartbeats of simulated runtimes.
pub struct FullBody<'a> {
    pub runtime_id: &'a str,
    pub project: &'a str,
    pub integration: &'a str,
    pub hash: &'a str,
    /// The state reported for `listener_1`.
    pub listener_state: &'a str,
    /// Also a second listener and a second resource (the fleet's bodies,
    /// whose size the benchmarks were measured with).
    pub extended: bool,
}

/// A full heartbeat as a Ballerina bridge sends it.
pub fn full_heartbeat(b: &FullBody) -> Value {
    let mut listeners = vec![json!({"name": "listener_1", "package": "ballerina/http:2",
        "protocol": "HTTP", "port": 9090, "host": "0.0.0.0", "state": b.listener_state})];
    let mut resources = vec![json!({"methods": ["GET"], "url": "/"})];
    if b.extended {
        listeners.push(json!({"name": "listener_2", "package": "ballerina/http:2",
            "protocol": "HTTP", "port": 9091, "host": "0.0.0.0", "state": "enabled"}));
        resources.push(json!({"methods": ["POST"], "url": "/{id}"}));
    }
    json!({
        "runtimeId": b.runtime_id,
        "runtime": format!("node-{}", &b.runtime_id[24..]),
        "runtimeType": "BI",
        "heartbeatVersion": "v1.0",
        "status": "RUNNING",
        "environment": "dev",
        "project": b.project,
        "component": b.integration,
        "version": "1.0.0",
        "nodeInfo": {"platformName": "ballerina", "platformVersion": "2201.13.2",
                     "ballerinaHome": "/opt/bal", "osName": "Linux", "osVersion": "6.1"},
        "artifacts": {
            "listeners": listeners,
            "services": [{"name": "service_1", "basePath": "/orders", "package": "acme/orders:1",
                          "listeners": [{"name": "listener_1"}],
                          "resources": resources,
                          "state": "enabled"}],
            "main": {"packageOrg": "acme", "packageName": "orders", "packageVersion": "1.0.0"}
        },
        "logLevels": {"acme/orders": "INFO"},
        "runtimeHash": b.hash,
        "timestamp": timestamp(),
    })
}

/// Creates `n` secrets bound to `project`/`project-N` through the CLI, as an
/// operator would; the CLI shares the server's data directory (SQLite WAL).
pub fn create_secrets(
    icpd: &Path,
    data_dir: &Path,
    project: &str,
    n: usize,
) -> Result<Vec<String>, String> {
    create_typed_secrets(
        icpd,
        data_dir,
        project,
        "BI",
        &|i| format!("{project}-{i}"),
        n,
    )
}

/// Creates `n` secrets, the i-th bound to `project`/`integration(i)`
/// (created with `runtime_type`, BI or MI, if missing).
pub fn create_typed_secrets(
    icpd: &Path,
    data_dir: &Path,
    project: &str,
    runtime_type: &str,
    integration: &dyn Fn(usize) -> String,
    n: usize,
) -> Result<Vec<String>, String> {
    (0..n)
        .map(|i| {
            let out = Command::new(icpd)
                .arg("--data-dir")
                .arg(data_dir)
                .args(["secret", "create", "--env", "dev", "--project", project])
                .args([
                    "--integration",
                    &integration(i),
                    "--type",
                    runtime_type,
                    "--json",
                ])
                .output()
                .map_err(|e| format!("cannot run {}: {e}", icpd.display()))?;
            if !out.status.success() {
                return Err(format!(
                    "icpd secret create failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            let v: Value = serde_json::from_slice(&out.stdout)
                .map_err(|e| format!("icpd secret create printed no JSON: {e}"))?;
            v["secret"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| "icpd secret create --json printed no \"secret\"".to_string())
        })
        .collect()
}
