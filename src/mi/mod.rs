//! Micro Integrator runtimes (`runtimeType: "MI"`, see
//! `../shared/protocol/MI.md`): what their full heartbeat reports beyond
//! the bridge's, how it is validated, and the artifact rows it becomes.
//!
//! MI reports fifteen artifact lists (APIs, proxy services, endpoints, ...)
//! instead of the bridge's listeners and services. Each entry becomes one
//! [`MiArtifact`] row keyed by kind and name, with the few members the
//! control plane compares and acts on (state, tracing, statistics) in their
//! own columns and the entry as reported kept beside them for display.
//! Rows are diff-written like the bridge's (`store::mi`); `view` is what
//! operators see of them; `management` is MI's Management API as plain
//! data.

pub use crate::model::mi::*;

pub mod control;
pub mod management;
pub mod view;

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The most artifacts one heartbeat may report (all kinds together).
pub const MAX_ARTIFACTS: usize = 20_000;
/// The longest artifact name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 1_000;

/// What an MI full heartbeat adds to the common fields.
#[derive(Debug, Clone, Default)]
pub struct MiReport {
    pub management: Option<ManagementAddress>,
    pub artifacts: Vec<MiArtifact>,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::BadRequest(msg.into())
}

fn text_member(o: &Map<String, Value>, key: &str) -> Option<String> {
    match o.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// `runtimePort` as MI sends it (a string) or as a number; 1-65535.
pub fn parse_port(v: &Value) -> Result<u16> {
    let n = match v {
        Value::String(s) => s.trim().parse::<u64>().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    };
    match n {
        Some(p @ 1..=65535) => Ok(p as u16),
        _ => Err(bad(
            "runtimePort must be a port number 1-65535 (a string or a number)",
        )),
    }
}

/// Reads the MI-specific members of a full heartbeat body: `nodeInfo` (an
/// object), `runtimeHostname`/`runtimePort`, and `artifacts` with its
/// fifteen lists. Validation as MI.md asks: 400 for a missing or mistyped
/// member, an entry without a string `name`, or a name over
/// [`MAX_NAME_CHARS`]; lists MI does not send are ignored, unknown members
/// of an entry are kept.
pub fn read_report(body: &Value) -> Result<MiReport> {
    let top = body
        .as_object()
        .ok_or_else(|| bad("heartbeat body must be a JSON object"))?;
    match top.get("nodeInfo") {
        Some(Value::Object(_)) => {}
        Some(_) => return Err(bad("nodeInfo must be an object")),
        None => {
            return Err(bad(
                "nodeInfo is missing; an MI full heartbeat carries its node information",
            ))
        }
    }
    let port = match top.get("runtimePort") {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_port(v)?),
    };
    let host = match top.get("runtimeHostname") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() <= 255 && !s.trim().is_empty() => Some(s.clone()),
        Some(_) => {
            return Err(bad(
                "runtimeHostname must be a non-empty host name of at most 255 characters",
            ))
        }
    };
    let management = host
        .zip(port)
        .map(|(host, port)| ManagementAddress { host, port });
    let lists = match top.get("artifacts") {
        Some(Value::Object(o)) => o,
        Some(_) => return Err(bad("artifacts must be an object of artifact lists")),
        None => {
            return Err(bad(
                "artifacts is missing; an MI full heartbeat lists its artifacts (empty lists when none)",
            ))
        }
    };
    let mut artifacts = Vec::new();
    for kind in MiKind::ALL {
        let entries = match lists.get(kind.list_name()) {
            None | Some(Value::Null) => continue,
            Some(Value::Array(a)) => a,
            Some(_) => {
                return Err(bad(format!(
                    "artifacts.{} must be a list",
                    kind.list_name()
                )))
            }
        };
        if artifacts.len() + entries.len() > MAX_ARTIFACTS {
            return Err(bad(format!(
                "a heartbeat may report at most {MAX_ARTIFACTS} artifacts"
            )));
        }
        for (i, entry) in entries.iter().enumerate() {
            let Value::Object(o) = entry else {
                return Err(bad(format!(
                    "artifacts.{}[{i}] must be an object",
                    kind.list_name()
                )));
            };
            artifacts.push(
                artifact(kind, o)
                    .map_err(|m| bad(format!("artifacts.{}[{i}]: {m}", kind.list_name())))?,
            );
        }
    }
    Ok(MiReport {
        management,
        artifacts,
    })
}

fn artifact(kind: MiKind, o: &Map<String, Value>) -> std::result::Result<MiArtifact, String> {
    let name = match o.get("name") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err("every artifact needs a non-empty string name".into()),
    };
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!("name is over {MAX_NAME_CHARS} characters"));
    }
    // No MI can report one: Synapse names come from XML, which cannot hold
    // NUL, and registry resources are file names. Other control characters
    // are kept (a file name may have them) and escaped where shown.
    if name.contains('\0') {
        return Err("name contains a NUL character".into());
    }
    let state = match kind {
        // Carbon apps and connectors report `status`, not `state`.
        MiKind::CarbonApp | MiKind::Connector => text_member(o, "status"),
        // A data service MI failed to read is {"state": "UNKNOWN"}.
        _ => text_member(o, "state"),
    };
    let error = match kind {
        MiKind::CarbonApp => text_member(o, "errorMessage").or_else(|| {
            (state.as_deref() == Some("faulty")).then(|| "faulty (MI gave no reason)".to_string())
        }),
        MiKind::Connector => text_member(o, "error"),
        MiKind::DataService if state.as_deref() == Some("UNKNOWN") => {
            Some("MI could not read this data service (state UNKNOWN)".into())
        }
        _ => None,
    };
    Ok(MiArtifact {
        kind,
        state,
        tracing: text_member(o, "tracing"),
        statistics: text_member(o, "statistics"),
        carbon_app: text_member(o, "carbonApp"),
        error,
        detail: Value::Object(o.clone()),
        name,
    })
}

/// How desired state and commands name an MI artifact: `kind/name`
/// (`proxy-service/StockQuoteProxy`); names may contain `/`, kinds never.
pub fn artifact_key(kind: MiKind, name: &str) -> String {
    format!("{}/{name}", kind.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body() -> Value {
        json!({
            "runtimeHostname": "mi-1.example.com", "runtimePort": "9164",
            "nodeInfo": {"javaVersion": "21"},
            "artifacts": {
                "apis": [{"name": "HealthcareAPI", "tracing": "disabled", "statistics": "enabled",
                          "resources": [{"path": "/a", "methods": "GET"}]}],
                "proxyServices": [{"name": "P", "state": "disabled", "carbonApp": "C"}],
                "carbonApps": [{"name": "C", "status": "active"},
                               {"name": "L", "status": "faulty", "errorMessage": "boom"}],
                "dataServices": [{"name": "D", "type": "DataService", "state": "UNKNOWN"}],
                "connectors": [{"name": "ERROR_x", "status": "error", "error": "unreadable"}],
                "logFiles": [{"FileName": "x"}]
            }
        })
    }

    #[test]
    fn a_report_keeps_what_control_compares_in_columns() {
        let r = read_report(&body()).unwrap();
        assert_eq!(
            r.management,
            Some(ManagementAddress {
                host: "mi-1.example.com".into(),
                port: 9164
            })
        );
        let p = r
            .artifacts
            .iter()
            .find(|a| a.kind == MiKind::ProxyService)
            .unwrap();
        assert_eq!(
            (p.state.as_deref(), p.carbon_app.as_deref()),
            (Some("disabled"), Some("C"))
        );
        let faulty: Vec<(&str, &str)> = r
            .artifacts
            .iter()
            .filter_map(|a| a.error.as_deref().map(|e| (a.name.as_str(), e)))
            .collect();
        assert_eq!(faulty.len(), 3, "{faulty:?}");
        assert!(faulty.contains(&("L", "boom")));
        assert_eq!(r.artifacts.len(), 6, "unknown lists are ignored");
    }

    #[test]
    fn malformed_reports_are_refused_with_the_member_named() {
        type Mutation = fn(&mut Value);
        let cases: Vec<(Mutation, &str)> = vec![
            (
                |b| drop(b.as_object_mut().unwrap().remove("nodeInfo")),
                "nodeInfo",
            ),
            (
                |b| drop(b.as_object_mut().unwrap().remove("artifacts")),
                "artifacts",
            ),
            (
                |b| b["artifacts"]["apis"] = json!({"a": 1}),
                "artifacts.apis",
            ),
            (|b| b["artifacts"]["apis"] = json!([1]), "artifacts.apis[0]"),
            (
                |b| b["artifacts"]["proxyServices"][0] = json!({"state": "x"}),
                "name",
            ),
            (|b| b["runtimePort"] = json!("http"), "runtimePort"),
            (|b| b["runtimePort"] = json!(70000), "runtimePort"),
            (
                |b| b["artifacts"]["sequences"] = json!([{"name": "x".repeat(1001)}]),
                "1000",
            ),
            (
                |b| b["artifacts"]["tasks"] = json!([{"name": "a\u{0}b"}]),
                "artifacts.tasks[0]: name contains a NUL",
            ),
        ];
        for (mutate, needle) in cases {
            let mut b = body();
            mutate(&mut b);
            let e = read_report(&b).unwrap_err().to_string();
            assert!(e.contains(needle), "{needle}: {e}");
        }
    }

    #[test]
    fn ports_come_as_strings_or_numbers() {
        assert_eq!(parse_port(&json!("9164")).unwrap(), 9164);
        assert_eq!(parse_port(&json!(9154)).unwrap(), 9154);
        assert!(parse_port(&json!("0")).is_err());
        assert!(parse_port(&json!(-1)).is_err());
        assert!(parse_port(&json!(true)).is_err());
    }

    #[test]
    fn kinds_round_trip_and_know_their_controls() {
        for k in MiKind::ALL {
            assert_eq!(MiKind::parse(k.as_str()), Some(k));
        }
        assert!(MiKind::Task.has_status() && !MiKind::Task.has_tracing());
        assert!(!MiKind::Api.has_status() && MiKind::Api.has_tracing());
        assert!(MiKind::Template.has_statistics() && !MiKind::Template.has_tracing());
    }
}
