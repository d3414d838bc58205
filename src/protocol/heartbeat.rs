//! Heartbeat bodies as the bridge sends them, their validation, and the
//! registration a full heartbeat performs.
//!
//! Validation happens before anything is stored; a rejected heartbeat
//! changes nothing. Registration runs in one store transaction: auto-binding
//! an unbound secret, creating the project and integration it names,
//! replacing the OFFLINE predecessor of a restarted node, and writing only
//! the artifact rows that changed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::catalog::{self, normalize_handle};
use crate::error::{Error, Result};
use crate::liveness::Liveness;
use crate::mi::MiReport;
use crate::runtimes::{Artifacts, Status};
use crate::secrets::ActiveSecret;
use crate::store::{ArtifactWrites, RuntimeRegistration, Tx};
use crate::time::Millis;

/// The only heartbeat version the bridge speaks.
pub const HEARTBEAT_VERSION: &str = "v1.0";

/// Optional heartbeat fields this server understands; the bridge sends them only when listed.
pub const SUPPORTED_FIELDS: &[&str] = &["tryItHost", "openApiDefinitions"];

/// `POST /icp/heartbeat`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FullHeartbeat {
    pub runtime_id: String,
    #[serde(default)]
    pub runtime: Option<String>,
    pub runtime_type: String,
    pub heartbeat_version: String,
    #[serde(default)]
    pub status: Option<String>,
    pub environment: String,
    pub project: String,
    pub component: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub node_info: Option<Map<String, Value>>,
    #[serde(default)]
    pub artifacts: Option<Artifacts>,
    #[serde(default)]
    pub log_levels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub runtime_hash: Option<String>,
    #[serde(default)]
    pub timestamp: Option<Value>,
    #[serde(default)]
    pub try_it_host: Option<String>,
    /// OpenAPI definitions of the runtime's services: file name → the
    /// document, as JSON or JSON text (`contracts::read_definitions`),
    /// kept as sent so that its members keep their order.
    #[serde(default)]
    pub open_api_definitions: Option<BTreeMap<String, Box<serde_json::value::RawValue>>>,
    /// What an MI runtime reports beyond the common fields (its artifact
    /// lists replace `artifacts`, which stays `None` for MI).
    #[serde(skip)]
    pub mi: Option<MiReport>,
}

/// `POST /icp/deltaHeartbeat`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaHeartbeat {
    pub runtime_id: String,
    pub heartbeat_version: String,
    pub runtime_hash: String,
    #[serde(default)]
    pub timestamp: Option<Value>,
}

/// The answer to both heartbeats.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatResponse {
    pub acknowledged: bool,
    pub full_heartbeat_required: bool,
    pub commands: Vec<Value>,
    pub supported_heartbeat_fields: &'static [&'static str],
}

impl HeartbeatResponse {
    pub fn ok(full_heartbeat_required: bool) -> HeartbeatResponse {
        HeartbeatResponse {
            acknowledged: true,
            full_heartbeat_required,
            commands: Vec::new(),
            supported_heartbeat_fields: SUPPORTED_FIELDS,
        }
    }

    /// The same response carrying these control commands.
    pub fn with_commands(self, commands: Vec<Value>) -> HeartbeatResponse {
        HeartbeatResponse { commands, ..self }
    }
}

fn bad(msg: impl Into<String>) -> Error {
    Error::BadRequest(msg.into())
}

/// Decodes a JSON body into `T`, turning every decoding failure into a 400.
pub fn decode<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| bad(format!("invalid heartbeat body: {e}")))
}

/// Decodes a JSON body as a `Value`, refusing (400) an object that names
/// a member twice, at any depth. `serde_json::Value` would keep the last
/// of them silently, so two readers of the same bytes could disagree on
/// what was reported (which list, which name); no runtime serialises
/// duplicates, so refusing them costs a well-formed one nothing.
pub fn decode_unique(body: &[u8]) -> Result<Value> {
    serde_json::from_slice::<UniqueValue>(body)
        .map(|v| v.0)
        .map_err(|e| bad(format!("invalid heartbeat body: {e}")))
}

/// A `Value` whose objects were read without duplicate members.
struct UniqueValue(Value);

impl<'de> Deserialize<'de> for UniqueValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor).map(UniqueValue)
    }
}

struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> std::result::Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number must be finite"))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if members.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "duplicate member {:?}",
                    truncate(&key)
                )));
            }
            let UniqueValue(v) = map.next_value()?;
            members.insert(key, v);
        }
        Ok(Value::Object(members))
    }
}

/// The `runtimeId` a body names, if it is JSON with one (for the trace of
/// a refused heartbeat; nothing else is read from an unauthenticated body).
pub fn peek_runtime_id(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Named {
        runtime_id: Option<String>,
    }
    serde_json::from_slice::<Named>(body).ok()?.runtime_id
}

fn check_version(v: &str) -> Result<()> {
    if v != HEARTBEAT_VERSION {
        return Err(bad(format!(
            "heartbeatVersion '{}' is not supported; expected {HEARTBEAT_VERSION}",
            truncate(v)
        )));
    }
    Ok(())
}

fn check_runtime_id(id: &str) -> Result<()> {
    if id.chars().count() != 36 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(bad("runtimeId must be a 36-character UUID"));
    }
    Ok(())
}

fn check_timestamp(t: &Option<Value>) -> Result<()> {
    let ok = match t {
        None | Some(Value::Null) => true,
        Some(Value::Array(a)) => a.len() == 2 && a.iter().all(Value::is_number),
        Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
        _ => false,
    };
    if !ok {
        return Err(bad(
            "timestamp must be [epochSeconds, fraction] or an RFC 3339 string",
        ));
    }
    Ok(())
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

impl DeltaHeartbeat {
    pub fn validate(&self) -> Result<()> {
        check_version(&self.heartbeat_version)?;
        check_runtime_id(&self.runtime_id)?;
        check_timestamp(&self.timestamp)
    }
}

impl FullHeartbeat {
    /// Decodes and validates a full heartbeat body: the common fields, and
    /// for an MI runtime its node information, Management API address and
    /// artifact lists (`mi::read_report`). Every failure is a 400 naming
    /// the member at fault.
    pub fn read(body: &[u8]) -> Result<FullHeartbeat> {
        // Straight into the struct first: it refuses duplicate members,
        // which a `Value` would silently collapse.
        let mut hb: FullHeartbeat = decode(body)?;
        hb.validate()?;
        if hb.runtime_type == "MI" {
            // MI's members below the top level (artifact lists and
            // entries) are read from a `Value`: one that refuses
            // duplicates there too.
            let value = decode_unique(body)?;
            hb.mi = Some(crate::mi::read_report(&value)?);
            hb.artifacts = None;
            hb.log_levels = None;
        }
        Ok(hb)
    }

    /// Checks what can be checked without the database.
    pub fn validate(&self) -> Result<()> {
        check_version(&self.heartbeat_version)?;
        check_runtime_id(&self.runtime_id)?;
        if let Some(name) = &self.runtime {
            if name.chars().count() > 100 {
                return Err(bad(
                    "runtime (the node name) must be at most 100 characters",
                ));
            }
            if name.trim().is_empty() {
                return Err(bad(
                    "runtime (the node name) must not be blank; leave it out instead",
                ));
            }
        }
        if self.runtime_type != "BI" && self.runtime_type != "MI" {
            return Err(bad(format!(
                "runtimeType '{}' must be BI or MI",
                truncate(&self.runtime_type)
            )));
        }
        if let Some(s) = &self.status {
            if Status::parse(s).is_none() {
                return Err(bad(format!(
                    "status '{}' must be RUNNING or OFFLINE",
                    truncate(s)
                )));
            }
        }
        for (field, value) in [
            ("environment", &self.environment),
            ("project", &self.project),
            ("component", &self.component),
        ] {
            if normalize_handle(value).is_empty() {
                return Err(bad(format!("{field} must be a non-empty handle")));
            }
            if value.len() > 200 {
                return Err(bad(format!("{field} must be at most 200 characters")));
            }
        }
        check_timestamp(&self.timestamp)
    }

    /// The status the runtime reports (RUNNING when absent).
    pub fn reported_status(&self) -> Status {
        self.status
            .as_deref()
            .and_then(Status::parse)
            .unwrap_or(Status::Running)
    }

    /// A digest of everything stored as artifact rows, to skip unchanged ones.
    pub fn artifacts_digest(&self) -> String {
        let mi = self.mi.as_ref().map(|m| &m.artifacts);
        let canonical = serde_json::json!({"artifacts": self.artifacts, "logLevels": self.log_levels, "mi": mi});
        let d = ring::digest::digest(&ring::digest::SHA256, canonical.to_string().as_bytes());
        d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What registration did.
#[derive(Debug, Clone)]
pub struct Registration {
    pub created: bool,
    pub replaced: Vec<String>,
    pub integration_id: i64,
    pub environment_id: i64,
    /// Whether the runtime's own row was written (created or changed).
    pub record_changed: bool,
    pub artifact_writes: ArtifactWrites,
    /// OpenAPI definition files written or deleted.
    pub definition_writes: crate::contracts::DefinitionWrites,
}

/// Registers (or refreshes) the runtime of a validated full heartbeat inside `tx`.
pub fn register(
    tx: &Tx,
    liveness: &Liveness,
    secret: &ActiveSecret,
    hb: &FullHeartbeat,
    now: Millis,
) -> Result<Registration> {
    let env_handle = normalize_handle(&hb.environment);
    let env = tx.environment_by_handle(&env_handle)?.ok_or_else(|| {
        bad(format!(
            "environment '{env_handle}' does not exist; environments are created by operators (icpd env create), never by a heartbeat"
        ))
    })?;
    if env.id != secret.environment_id {
        return Err(Error::Conflict(format!(
            "this secret belongs to environment '{}', but the heartbeat names '{}'",
            secret.environment, env.handle
        )));
    }
    let integration = match secret.integration_id {
        Some(id) => {
            let (integration, project) = tx
                .integration_with_project(id)?
                .ok_or_else(|| Error::Internal(format!("integration {id} missing")))?;
            let (p, c) = (
                normalize_handle(&hb.project),
                normalize_handle(&hb.component),
            );
            if p != project.handle || c != integration.handle {
                return Err(Error::Conflict(format!(
                    "this secret is bound to {}/{}, but the heartbeat names {p}/{c}",
                    project.handle, integration.handle
                )));
            }
            integration
        }
        None => {
            let (project, integration) = catalog::find_or_create_integration(
                tx,
                &hb.project,
                &hb.component,
                &hb.runtime_type,
                now,
            )?;
            if !tx.bind_secret(&secret.key_id, project.id, integration.id, now)? {
                return Err(Error::Conflict(
                    "this secret was bound to another integration meanwhile; retry".into(),
                ));
            }
            log::info!(
                "secret {} bound to {}/{}",
                secret.key_id,
                project.handle,
                integration.handle
            );
            integration
        }
    };
    if integration.runtime_type != hb.runtime_type {
        return Err(Error::Conflict(format!(
            "integration '{}' runs {} runtimes, but this runtime is {}",
            integration.handle, integration.runtime_type, hb.runtime_type
        )));
    }

    let existing = tx.runtime(&hb.runtime_id)?;
    if let Some(ex) = &existing {
        if ex.key_id != secret.key_id
            && (ex.integration_id != integration.id || ex.environment_id != env.id)
        {
            return Err(Error::Conflict(format!(
                "runtime {} is registered to {}/{} in '{}'; a runtimeId cannot move to another integration or environment",
                hb.runtime_id, ex.project, ex.integration, ex.environment
            )));
        }
    }

    // A node that restarted under the same name with a new runtimeId takes
    // the place of its OFFLINE predecessor. RUNNING ones are left alone: a
    // predecessor that stops is removed by the sweeper once it times out.
    let mut replaced = Vec::new();
    if let Some(name) = hb.runtime.as_deref() {
        for other in tx.runtimes_named(integration.id, env.id, name)? {
            let status = liveness.status(&other.runtime_id).unwrap_or(other.status);
            if other.runtime_id != hb.runtime_id && status == Status::Offline {
                tx.delete_runtime(&other.runtime_id)?;
                replaced.push(other.runtime_id);
            }
        }
    }

    let node_info = Value::Object(hb.node_info.clone().unwrap_or_default()).to_string();
    let reg = RuntimeRegistration {
        runtime_id: &hb.runtime_id,
        name: hb.runtime.as_deref(),
        runtime_type: &hb.runtime_type,
        environment_id: env.id,
        integration_id: integration.id,
        key_id: &secret.key_id,
        version: hb.version.as_deref(),
        node_info: &node_info,
        try_it_host: hb.try_it_host.as_deref(),
        runtime_hash: hb.runtime_hash.as_deref(),
        now,
    };
    let record_changed = if existing.is_some() {
        tx.update_runtime(&reg)?
    } else {
        tx.insert_runtime(&reg, hb.reported_status())?;
        true
    };
    let empty_artifacts = Artifacts::default();
    let empty_levels = BTreeMap::new();
    let digest = hb.artifacts_digest();
    let artifact_writes = match &hb.mi {
        None => tx.sync_artifacts(
            &hb.runtime_id,
            hb.artifacts.as_ref().unwrap_or(&empty_artifacts),
            hb.log_levels.as_ref().unwrap_or(&empty_levels),
            &digest,
        )?,
        Some(mi) => {
            tx.set_management_address(&hb.runtime_id, mi.management.as_ref())?;
            tx.sync_mi_artifacts(&hb.runtime_id, &mi.artifacts, &digest)?
        }
    };
    // A full heartbeat says everything the runtime runs: no definitions
    // (or an MI runtime, which has none) clears the stored ones.
    let definitions = match (&hb.mi, &hb.open_api_definitions) {
        (None, Some(raw)) => crate::contracts::read_definitions(
            raw,
            hb.artifacts.as_ref().map_or(&[][..], |a| &a.services),
        ),
        _ => Vec::new(),
    };
    let definition_writes = tx.sync_openapi_definitions(&hb.runtime_id, &definitions, now)?;
    Ok(Registration {
        created: existing.is_none(),
        replaced,
        integration_id: integration.id,
        environment_id: env.id,
        record_changed,
        artifact_writes,
        definition_writes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::liveness::Liveness;
    use crate::store::Store;
    use serde_json::json;

    fn heartbeat(listener_state: &str, level: &str) -> FullHeartbeat {
        let body = json!({
            "runtimeId": "3f6d0f0e-7c4e-4d8e-9a43-6a1b2c3d4e5f", "runtime": "n1", "runtimeType": "BI",
            "heartbeatVersion": "v1.0", "environment": "dev", "project": "p", "component": "i",
            "artifacts": {
                "listeners": [{"name": "l1", "port": 9090, "state": listener_state}, {"name": "l2", "port": 9091}],
                "services": [{"name": "s1", "basePath": "/a", "listeners": [{"name": "l1"}],
                              "resources": [{"methods": ["GET"], "url": "/"}, {"methods": ["POST"], "url": "/{id}"}]}],
                "main": {"packageOrg": "acme"}
            },
            "logLevels": {"acme/a": level, "acme/b": "INFO"},
            "runtimeHash": "h"
        });
        let hb: FullHeartbeat = decode(body.to_string().as_bytes()).unwrap();
        hb.validate().unwrap();
        hb
    }

    /// An MI heartbeat with `artifacts` spliced in as raw JSON text.
    fn mi_body(artifacts: &str) -> String {
        format!(
            r#"{{"runtimeId":"3f6d0f0e-7c4e-4d8e-9a43-6a1b2c3d4e5f","runtimeType":"MI","heartbeatVersion":"v1.0",
               "environment":"dev","project":"p","component":"i","nodeInfo":{{"osName":"Linux"}},
               "artifacts":{artifacts}}}"#
        )
    }

    #[test]
    fn mi_heartbeats_with_a_member_given_twice_are_refused_at_any_depth() {
        let ok = FullHeartbeat::read(mi_body(r#"{"apis":[{"name":"A","x":{"y":1}}]}"#).as_bytes())
            .unwrap();
        assert_eq!(ok.mi.unwrap().artifacts[0].name, "A");
        for (artifacts, member) in [
            (r#"{"apis":[],"apis":[{"name":"A"}]}"#, "apis"),
            (r#"{"apis":[{"name":"A","name":"B"}]}"#, "name"),
            (r#"{"apis":[{"name":"A","x":{"y":1,"y":2}}]}"#, "y"),
            (r#"{"apis":[{"name":"A","x":[{"z":1,"z":1}]}]}"#, "z"),
        ] {
            let e = FullHeartbeat::read(mi_body(artifacts).as_bytes()).unwrap_err();
            assert!(
                matches!(&e, Error::BadRequest(m) if m.contains(&format!("duplicate member \"{member}\""))),
                "{artifacts}: {e:?}"
            );
        }
        let twice = mi_body("{}").replace(
            r#""nodeInfo":{"osName":"Linux"}"#,
            r#""nodeInfo":{"osName":"Linux","osName":"BSD"}"#,
        );
        assert!(matches!(
            FullHeartbeat::read(twice.as_bytes()),
            Err(Error::BadRequest(_))
        ));
    }

    #[test]
    fn unique_decoding_reads_what_serde_json_reads() {
        let text =
            r#"{"a":[1,-2,3.5,18446744073709551615,"s\u00e9",true,false,null,{}],"b":{"c":[]}}"#;
        let plain: Value = serde_json::from_str(text).unwrap();
        assert_eq!(decode_unique(text.as_bytes()).unwrap(), plain);
        for refused in ["[1e400]", "{\"a\":", &"[".repeat(200)] {
            assert!(decode_unique(refused.as_bytes()).is_err(), "{refused}");
        }
    }

    #[test]
    fn full_heartbeats_write_only_changed_artifact_rows() {
        let dir = std::env::temp_dir().join(format!("icpd-unit-artifacts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir.join("icp.db")).unwrap();
        let liveness = Liveness::load(&store, std::time::Duration::from_secs(30), 0).unwrap();
        let env = store
            .read(|tx| tx.environment_by_handle("dev"))
            .unwrap()
            .unwrap();
        let secret = ActiveSecret {
            key_id: "abcd1234".into(),
            material: String::new(),
            environment_id: env.id,
            environment: "dev".into(),
            project_id: None,
            integration_id: None,
        };
        store
            .write(|tx| {
                tx.insert_secret(&crate::secrets::StoredSecret {
                    key_id: "abcd1234".into(),
                    environment_id: env.id,
                    environment: "dev".into(),
                    project_id: None,
                    integration_id: None,
                    project: None,
                    integration: None,
                    sealed_material: vec![0; 40],
                    created_at: 0,
                    expires_at: None,
                    revoked_at: None,
                    bound_at: None,
                })
            })
            .unwrap();
        let run = |hb: &FullHeartbeat, now: Millis| {
            // As on every request, the secret's binding is read afresh.
            let stored = store.read(|tx| tx.secret("abcd1234")).unwrap().unwrap();
            let secret = ActiveSecret {
                project_id: stored.project_id,
                integration_id: stored.integration_id,
                ..secret.clone()
            };
            let reg = store
                .write(|tx| register(tx, &liveness, &secret, hb, now))
                .unwrap();
            (reg.record_changed, reg.artifact_writes)
        };
        let wal = dir.join("icp.db-wal");
        let wal_size = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        // 2 listeners + 1 service + 2 resources + 1 binding + 2 log levels.
        let first = run(&heartbeat("enabled", "INFO"), 1);
        assert_eq!(
            first,
            (
                true,
                ArtifactWrites {
                    inserted: 8,
                    updated: 0,
                    deleted: 0
                }
            )
        );
        let before = wal_size();
        assert_eq!(
            run(&heartbeat("enabled", "INFO"), 2),
            (false, ArtifactWrites::default()),
            "an unchanged full heartbeat writes nothing"
        );
        assert_eq!(wal_size(), before, "nothing reached the write-ahead log");
        let mut upgraded = heartbeat("enabled", "INFO");
        upgraded.version = Some("2.0.0".into());
        assert_eq!(run(&upgraded, 3), (true, ArtifactWrites::default()));
        assert!(wal_size() > before, "the changed row was written");
        let (_, changed) = run(&heartbeat("disabled", "DEBUG"), 3);
        assert_eq!(
            changed,
            ArtifactWrites {
                inserted: 0,
                updated: 2,
                deleted: 0
            },
            "one listener, one level"
        );
        let mut fewer = heartbeat("disabled", "DEBUG");
        fewer.artifacts.as_mut().unwrap().services[0]
            .resources
            .pop();
        assert_eq!(
            run(&fewer, 4).1,
            ArtifactWrites {
                inserted: 0,
                updated: 0,
                deleted: 1
            }
        );
        let stored = || {
            store
                .read(|tx| tx.runtime_detail("3f6d0f0e-7c4e-4d8e-9a43-6a1b2c3d4e5f"))
                .unwrap()
                .unwrap()
        };
        let detail = stored();
        assert_eq!(
            detail.artifacts.listeners[0].state.as_deref(),
            Some("disabled")
        );
        // Tables whose rows are as stored are skipped, by their own
        // digests: here listeners and levels change back and resources
        // regain their row, and each of those is compared and written.
        assert_eq!(
            run(&heartbeat("enabled", "INFO"), 5).1,
            ArtifactWrites {
                inserted: 1,
                updated: 2,
                deleted: 0
            }
        );
        let back = stored();
        assert_eq!(
            back.artifacts.listeners[0].state.as_deref(),
            Some("enabled")
        );
        assert_eq!(back.artifacts.services[0].resources.len(), 2);
        assert_eq!(back.log_levels["acme/a"], "INFO");
        let (_, changed) = run(&fewer, 6);
        assert_eq!(changed.total(), 3, "listener, level, resource: {changed:?}");
        assert_eq!(detail.artifacts.services[0].resources.len(), 1);
        assert_eq!(detail.artifacts.main, Some(json!({"packageOrg": "acme"})));
        assert_eq!(detail.log_levels["acme/a"], "DEBUG");
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
