//! The runtime bridge protocol (see `../shared/protocol/PROTOCOL.md`): the
//! token check, full and delta heartbeats, and command results.
//!
//! [`Protocol`] is what the runtime listener's handlers call. Each method
//! authenticates first (so a bad token is a 401 whatever the body), then
//! decodes and validates (400), then acts. The delta path touches memory
//! only: the secret comes from the [`SecretCache`], liveness and due control
//! commands from memory. A full heartbeat also reconciles the runtime's
//! control commands with what it now reports, in the same transaction, and
//! once committed publishes `runtime.registered` / `runtime.removed`.
//! Every heartbeat is counted in `metrics` by kind and outcome. A refusal
//! for the credential, the binding or the rate comes back as a
//! [`Refused`] with its reason and what is known of the runtime, for the
//! router to record (see `refusals`).

pub mod heartbeat;
pub mod token;

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use crate::commands::{Beat, Commands, Reported};
use crate::config::TokenConfig;
use crate::error::{Error, Result};
use crate::events::{self, Event, Events};
use crate::liveness::{DeltaOutcome, FullBeat, Liveness};
use crate::master_key::MasterKey;
use crate::metrics::{self, HeartbeatKind, HeartbeatOutcome};
use crate::refusals::{Reason, Refused, Subject};
use crate::secrets::{ActiveSecret, SecretCache};
use crate::store::Store;
use crate::time::Millis;
use heartbeat::{DeltaHeartbeat, FullHeartbeat, HeartbeatResponse};

/// The bridge protocol's entry points, with what they need.
pub struct Protocol {
    pub store: Arc<Store>,
    pub master_key: Arc<MasterKey>,
    pub liveness: Arc<Liveness>,
    pub secrets: SecretCache,
    pub token: TokenConfig,
    /// Pending control commands and their convergence.
    pub commands: Arc<Commands>,
    /// Where registrations and replacements are published.
    pub events: Arc<Events>,
    /// MI management: told of MI registrations (to read their loggers),
    /// asked for tunnelled commands, given their results.
    pub mi: Option<Arc<crate::mi::control::MiControl>>,
}

/// `POST /icp/commandResult`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CommandResult {
    runtime_id: String,
    command_id: String,
    status: String,
    /// The Management API's status, for an MI_MGMT command's result.
    #[serde(default)]
    http_status: Option<Value>,
    /// What the Management API answered (JSON, a JSON string for text, or null).
    #[serde(default)]
    body: Option<Value>,
}

/// Whether a command id is one of the MI_MGMT commands of tunnel mode
/// (`mio-` writes, `mir-` reads; MI.md "Tunnel mode"), whose results carry
/// the Management API's `httpStatus`.
pub fn is_mi_command_id(command_id: &str) -> bool {
    command_id.starts_with("mio-") || command_id.starts_with("mir-")
}

/// A runtime over its heartbeat rate limit (see `config::HeartbeatLimits`).
fn too_many(runtime_id: &str, kind: &str, retry_after_secs: u64) -> Error {
    Error::TooManyRequests {
        message: format!(
            "runtime {runtime_id} sends {kind} heartbeats faster than this server allows (heartbeat_limits); retry after {retry_after_secs} s"
        ),
        retry_after_secs,
    }
}

impl Protocol {
    /// Checks the bearer token against the secrets as they are now.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        now: Millis,
    ) -> Result<ActiveSecret, Refused> {
        token::verify(authorization, now, &self.token, |kid| {
            self.secrets.lookup(&self.store, &self.master_key, kid, now)
        })
    }

    /// A full heartbeat: registers or refreshes the runtime.
    pub fn full_heartbeat(
        &self,
        authorization: Option<&str>,
        body: &[u8],
        now: Millis,
    ) -> Result<HeartbeatResponse, Refused> {
        let result = self
            .register(authorization, body, now)
            .map_err(|r| with_runtime_of(r, body));
        metrics::heartbeat(
            HeartbeatKind::Full,
            result.as_ref().map_or_else(
                |r| HeartbeatOutcome::of_error(&r.error),
                |_| HeartbeatOutcome::Ok,
            ),
        );
        result
    }

    fn register(
        &self,
        authorization: Option<&str>,
        body: &[u8],
        now: Millis,
    ) -> Result<HeartbeatResponse, Refused> {
        let secret = self.authenticate(authorization, now)?;
        let hb = FullHeartbeat::read(body)?;
        let subject = || Subject::secret(&secret).with_runtime(Some(&hb.runtime_id));
        if let Err(retry_after_secs) = self.liveness.admit_full(&hb.runtime_id, now) {
            return Err(Refused::new(
                Reason::RateLimited,
                subject(),
                too_many(&hb.runtime_id, "full", retry_after_secs),
            ));
        }
        // The ordering lock keeps the command table in commit order with
        // operators' requests and this runtime's other writers (see
        // `commands`): its id, and the name slot whose OFFLINE runtime it
        // may replace.
        let slot = hb.runtime.as_deref().map(|name| {
            use crate::catalog::normalize_handle as h;
            format!(
                "slot {}/{}/{}/{name}",
                h(&hb.environment),
                h(&hb.project),
                h(&hb.component)
            )
        });
        let keys: Vec<&str> = std::iter::once(hb.runtime_id.as_str())
            .chain(slot.as_deref())
            .collect();
        let order = self.commands.order_keys(&keys);
        let (reg, changes, info) = self
            .store
            .write(|tx| {
                let reg = heartbeat::register(tx, &self.liveness, &secret, &hb, now)?;
                let beat = Beat {
                    runtime_id: &hb.runtime_id,
                    integration_id: reg.integration_id,
                    environment_id: reg.environment_id,
                    reported: match &hb.mi {
                        // MI's logger levels are not in its heartbeat: the
                        // ones last read from its Management API stand.
                        Some(mi) => Reported::mi(&mi.artifacts, tx.log_levels(&hb.runtime_id)?),
                        None => Reported::new(hb.artifacts.as_ref(), hb.log_levels.as_ref()),
                    },
                    replaced: &reg.replaced,
                };
                let changes = self.commands.reconcile(tx, &beat, now)?;
                let info =
                    if (reg.created || !reg.replaced.is_empty()) && self.events.has_subscribers() {
                        events::runtime_info(tx, &hb.runtime_id)?
                    } else {
                        None
                    };
                Ok((reg, changes, info))
            })
            .map_err(|e| registration_refused(e, &secret, &hb, subject()))?;
        self.commands.apply(changes, now);
        drop(order);
        if reg.created {
            // Handles are normalised and the name is debug-quoted: a runtime
            // cannot forge log lines.
            log::info!(
                "runtime {} ({:?}) registered in {}/{}/{} [{}]",
                hb.runtime_id,
                hb.runtime.as_deref().unwrap_or("unnamed"),
                crate::catalog::normalize_handle(&hb.environment),
                crate::catalog::normalize_handle(&hb.project),
                crate::catalog::normalize_handle(&hb.component),
                hb.runtime_type
            );
        }
        for id in &reg.replaced {
            log::info!(
                "runtime {id} replaced by {} (same node name)",
                hb.runtime_id
            );
        }
        if reg.artifact_writes.total() > 0 {
            log::debug!(
                "runtime {}: artifacts changed, {:?}",
                hb.runtime_id,
                reg.artifact_writes
            );
        }
        let defs = reg.definition_writes;
        if defs.written + defs.deleted > 0 {
            log::debug!(
                "runtime {}: OpenAPI definitions changed, {} written, {} deleted",
                hb.runtime_id,
                defs.written,
                defs.deleted
            );
        }
        self.liveness.full(
            FullBeat {
                runtime_id: &hb.runtime_id,
                key_id: &secret.key_id,
                hash: hb.runtime_hash.as_deref(),
                reported: hb.reported_status(),
                slot: hb
                    .runtime
                    .clone()
                    .map(|n| (reg.integration_id, reg.environment_id, n)),
                created: reg.created,
            },
            &reg.replaced,
            now,
        );
        if let Some(info) = info {
            // A replaced runtime had the new one's name, integration and
            // environment, so it had its scope too.
            for id in &reg.replaced {
                self.events.publish(&Event::RuntimeRemoved {
                    runtime_id: id.clone(),
                    at: now,
                    scope: info.scope.clone(),
                });
            }
            if reg.created {
                self.events.publish(&Event::RuntimeRegistered {
                    runtime_id: hb.runtime_id.clone(),
                    info,
                    at: now,
                });
            }
        }
        let mut commands = self.commands.due(&self.store, &hb.runtime_id, now);
        if let (Some(mi), true) = (&self.mi, hb.mi.is_some()) {
            // MI's loggers are not in its heartbeat: read them when a
            // runtime first registers (then when someone looks, and after
            // every change icpd makes).
            if reg.created {
                mi.registered(&hb.runtime_id);
            }
            commands.extend(mi.tunnel_due(&hb.runtime_id, now));
        }
        Ok(HeartbeatResponse::ok(false).with_commands(commands))
    }

    /// A delta heartbeat: memory only.
    pub fn delta_heartbeat(
        &self,
        authorization: Option<&str>,
        body: &[u8],
        now: Millis,
    ) -> Result<HeartbeatResponse, Refused> {
        let result = self
            .record_delta(authorization, body, now)
            .map_err(|r| with_runtime_of(r, body));
        let outcome = match &result {
            Ok((_, outcome)) => *outcome,
            Err(r) => HeartbeatOutcome::of_error(&r.error),
        };
        metrics::heartbeat(HeartbeatKind::Delta, outcome);
        result.map(|(response, _)| response)
    }

    fn record_delta(
        &self,
        authorization: Option<&str>,
        body: &[u8],
        now: Millis,
    ) -> Result<(HeartbeatResponse, HeartbeatOutcome), Refused> {
        let secret = self.authenticate(authorization, now)?;
        let hb: DeltaHeartbeat = heartbeat::decode(body)?;
        hb.validate()?;
        let subject = || Subject::secret(&secret).with_runtime(Some(&hb.runtime_id));
        match self.liveness.delta(&hb.runtime_id, &secret.key_id, &hb.runtime_hash, now) {
            DeltaOutcome::Unknown => Ok((
                HeartbeatResponse::ok(true),
                HeartbeatOutcome::UnknownRuntime,
            )),
            DeltaOutcome::Accepted { full_required } => {
                let mut commands = self.commands.due(&self.store, &hb.runtime_id, now);
                // Tunnelled MI commands never ride on a response that asks
                // for a full heartbeat: MI acts on the full heartbeat's
                // response and would drop them (MI.md).
                if let (Some(mi), false) = (&self.mi, full_required) {
                    commands.extend(mi.tunnel_due(&hb.runtime_id, now));
                }
                Ok((
                    HeartbeatResponse::ok(full_required).with_commands(commands),
                    HeartbeatOutcome::Ok,
                ))
            }
            DeltaOutcome::OtherSecret => Err(Refused::new(
                Reason::BindingMismatch,
                subject(),
                Error::Forbidden(format!(
                    "runtime {} was registered under another secret; a delta heartbeat must use the same secret",
                    hb.runtime_id
                )),
            )),
            DeltaOutcome::Limited { retry_after_secs } => Err(Refused::new(
                Reason::RateLimited,
                subject(),
                too_many(&hb.runtime_id, "delta", retry_after_secs),
            )),
        }
    }

    /// `GET /icp/config`: the configuration of the integration the
    /// token's secret is bound to, in its environment, as TOML with
    /// secrets opened; the fetch is recorded (see `configuration`).
    pub fn config(
        &self,
        authorization: Option<&str>,
        who: &crate::configuration::Fetcher,
        now: Millis,
    ) -> Result<crate::configuration::Rendered, Refused> {
        let secret = self.authenticate(authorization, now)?;
        crate::configuration::fetch_for_runtime(&self.store, &self.master_key, &secret, who, now)
            .map_err(|e| match e {
                // An unbound secret, or a runtime id of another integration.
                Error::Forbidden(_) => Refused::new(
                    Reason::BindingMismatch,
                    Subject::secret(&secret).with_runtime(who.runtime_id),
                    e,
                ),
                e => e.into(),
            })
    }

    /// A tunnelled command's result: acknowledged; results arrive through full heartbeats.
    pub fn command_result(
        &self,
        authorization: Option<&str>,
        body: &[u8],
        now: Millis,
    ) -> Result<Value, Refused> {
        let secret = self.authenticate(authorization, now)?;
        let r: CommandResult = heartbeat::decode(body)?;
        if r.status != "COMPLETED" && r.status != "FAILED" {
            return Err(Error::BadRequest("status must be COMPLETED or FAILED".into()).into());
        }
        if is_mi_command_id(&r.command_id) {
            let valid = r
                .http_status
                .as_ref()
                .and_then(Value::as_u64)
                .is_some_and(|s| (100..=599).contains(&s));
            if !valid {
                return Err(Error::BadRequest(
                    "httpStatus must be the Management API's HTTP status (100-599) in the result of an MI_MGMT command".into(),
                )
                .into());
            }
        }
        if let (Some(mi), true) = (&self.mi, is_mi_command_id(&r.command_id)) {
            let status = r.http_status.as_ref().and_then(Value::as_u64).unwrap_or(0) as u16;
            // A FAILED result is the executor's own refusal (its body says
            // why); the status it carries is what to interpret.
            let used = mi.tunnel_result(
                &secret.key_id,
                &r.runtime_id,
                &r.command_id,
                status,
                r.body.as_ref(),
            );
            if !used {
                log::debug!("late or unknown MI command result {:?}", r.command_id);
            }
            return Ok(serde_json::json!({"accepted": true}));
        }
        log::info!(
            "runtime {:?} reports command {:?} {}",
            r.runtime_id,
            r.command_id,
            r.status
        );
        Ok(serde_json::json!({"accepted": true}))
    }
}

/// A refusal of a registration: the environment check comes first, so any
/// refusal of a heartbeat naming another environment than its secret's is
/// that mismatch (400 when the environment does not exist, 409 when it is
/// another); every other conflict is a binding that does not match.
fn registration_refused(
    e: Error,
    secret: &ActiveSecret,
    hb: &FullHeartbeat,
    subject: Subject,
) -> Refused {
    let environment_differs =
        crate::catalog::normalize_handle(&hb.environment) != secret.environment;
    let reason = match &e {
        Error::BadRequest(_) | Error::Conflict(_) if environment_differs => {
            Reason::EnvironmentMismatch
        }
        Error::Conflict(_) => Reason::BindingMismatch,
        _ => return e.into(),
    };
    Refused::new(reason, subject, e)
}

/// A refusal before the body was read names the runtime the body names,
/// if it does.
fn with_runtime_of(r: Refused, body: &[u8]) -> Refused {
    if r.reason.is_some() && r.subject.runtime_id.is_none() {
        return r.naming_runtime(heartbeat::peek_runtime_id(body).as_deref());
    }
    r
}
