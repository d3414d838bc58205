//! Live events for the console: runtime status changes, registrations and
//! removals, and control commands as they are issued and settle.
//!
//! [`Events`] is a hub with one bounded queue per subscriber. Publishers
//! (the liveness flush, full heartbeats, command requests, runtime
//! deletion) call [`Events::publish`] *after* their transaction committed,
//! so a subscriber that refetches through the REST API on an event sees
//! the new state. Publishing never waits: a subscriber whose queue is full
//! is dropped (its receiver sees the disconnect, and the console
//! reconnects and refetches). Every event carries the [`Scope`] of its
//! runtime, and each subscriber's filter (in the API: may this principal
//! view that integration?) decides whether it is delivered.
//!
//! Frames are formatted once per event, as Server-Sent Events text.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::access::Target;
use crate::commands::{CommandRow, CommandStatus};
use crate::error::Result;
use crate::runtimes::Status;
use crate::store::Tx;
use crate::time::{rfc3339, Millis};

/// Frames a subscriber may have waiting before it counts as too slow. A
/// mass time-out of this many runtimes in one flush is the largest burst
/// a healthy console must absorb.
pub const QUEUE: usize = 4096;

/// Where a runtime lives: ids for permission checks, handles for clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub project_id: i64,
    pub integration_id: i64,
    pub environment_id: i64,
    pub project: String,
    pub integration: String,
    pub environment: String,
}

impl Scope {
    /// The access target of the scope (`IntegrationView` ignores criticality).
    pub fn target(&self) -> Target {
        Target {
            project: Some(self.project_id),
            integration: Some(self.integration_id),
            environment: Some(self.environment_id),
            critical: false,
        }
    }
}

impl From<&crate::commands::Scope> for Scope {
    fn from(s: &crate::commands::Scope) -> Scope {
        Scope {
            project_id: s.project_id,
            integration_id: s.integration_id,
            environment_id: s.environment_id,
            project: s.project.clone(),
            integration: s.integration.clone(),
            environment: s.environment.clone(),
        }
    }
}

/// A stored runtime's scope, name and type, for events about it.
#[derive(Debug, Clone)]
pub struct RuntimeInfo {
    pub scope: Scope,
    pub name: Option<String>,
    pub runtime_type: String,
}

/// Looks up what events about `runtime_id` need (one primary-key lookup);
/// `None` if it is not stored.
pub fn runtime_info(tx: &Tx, runtime_id: &str) -> Result<Option<RuntimeInfo>> {
    let Some(r) = tx.runtime(runtime_id)? else {
        return Ok(None);
    };
    Ok(Some(RuntimeInfo {
        scope: Scope {
            project_id: r.project_id,
            integration_id: r.integration_id,
            environment_id: r.environment_id,
            project: r.project,
            integration: r.integration,
            environment: r.environment,
        },
        name: r.name,
        runtime_type: r.runtime_type,
    }))
}

/// The scope of (integration, environment), looked up by ids (for an
/// event about a runtime that no longer exists); `None` if either is gone.
pub fn scope_of(tx: &Tx, integration_id: i64, environment_id: i64) -> Result<Option<Scope>> {
    let Some(i) = tx.integration(integration_id)? else {
        return Ok(None);
    };
    let (Some(p), Some(environment)) = (
        tx.project(i.project_id)?,
        tx.environment_handle(environment_id)?,
    ) else {
        return Ok(None);
    };
    Ok(Some(Scope {
        project_id: p.id,
        integration_id,
        environment_id,
        project: p.handle,
        integration: i.handle,
        environment,
    }))
}

/// Something that happened, after it was committed.
#[derive(Debug, Clone)]
pub enum Event {
    /// A runtime became RUNNING or OFFLINE (`runtime.status`).
    RuntimeStatus {
        runtime_id: String,
        status: Status,
        at: Millis,
        scope: Scope,
    },
    /// A new runtime registered (`runtime.registered`).
    RuntimeRegistered {
        runtime_id: String,
        info: RuntimeInfo,
        at: Millis,
    },
    /// A runtime was replaced by a new one with its name, or deleted (`runtime.removed`).
    RuntimeRemoved {
        runtime_id: String,
        at: Millis,
        scope: Scope,
    },
    /// A command was issued (PENDING) or settled (`command`).
    Command {
        command_id: String,
        runtime_id: String,
        action: String,
        target: String,
        /// The value it establishes (`disabled`, `DEBUG`, ...).
        value: String,
        status: CommandStatus,
        at: Millis,
        scope: Scope,
    },
}

impl Event {
    /// The event for a command row now in `status`.
    pub fn command(row: &CommandRow, status: CommandStatus, at: Millis, scope: Scope) -> Event {
        Event::Command {
            command_id: row.command_id.clone(),
            runtime_id: row.runtime_id.clone(),
            action: row.action.clone(),
            target: row.target.clone(),
            value: row.value.clone(),
            status,
            at,
            scope,
        }
    }

    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            Event::RuntimeStatus { .. } => "runtime.status",
            Event::RuntimeRegistered { .. } => "runtime.registered",
            Event::RuntimeRemoved { .. } => "runtime.removed",
            Event::Command { .. } => "command",
        }
    }

    /// Where the event happened.
    pub fn scope(&self) -> &Scope {
        match self {
            Event::RuntimeStatus { scope, .. }
            | Event::RuntimeRemoved { scope, .. }
            | Event::Command { scope, .. } => scope,
            Event::RuntimeRegistered { info, .. } => &info.scope,
        }
    }

    /// The `data:` JSON (camelCase, handles rather than ids).
    pub fn data(&self) -> Value {
        let s = self.scope();
        let mut v = match self {
            Event::RuntimeStatus {
                runtime_id,
                status,
                at,
                ..
            } => json!({"runtimeId": runtime_id, "status": status.as_str(), "at": rfc3339(*at)}),
            Event::RuntimeRegistered {
                runtime_id,
                info,
                at,
            } => json!({
                "runtimeId": runtime_id,
                "name": info.name,
                "runtimeType": info.runtime_type,
                "at": rfc3339(*at),
            }),
            Event::RuntimeRemoved { runtime_id, at, .. } => {
                json!({"runtimeId": runtime_id, "at": rfc3339(*at)})
            }
            Event::Command {
                command_id,
                runtime_id,
                action,
                target,
                status,
                at,
                ..
            } => json!({
                "commandId": command_id,
                "runtimeId": runtime_id,
                "action": action,
                "target": target,
                "status": status.as_str(),
                "at": rfc3339(*at),
            }),
        };
        v["environment"] = s.environment.clone().into();
        v["project"] = s.project.clone().into();
        v["integration"] = s.integration.clone().into();
        v
    }
}

impl Event {
    /// The frame ICP 2's console reads from `/runtime-status` (GRAPHQL.md
    /// §1.5), for the events it has one for: a status change, and a
    /// logger level set. `environmentName` carries the environment's handle.
    pub fn icp_frame(&self) -> Option<String> {
        let s = self.scope();
        let v = match self {
            Event::RuntimeStatus {
                runtime_id, status, ..
            } => json!({
                "eventType": "RUNTIME_STATUS",
                "environmentId": s.environment_id.to_string(),
                "environmentName": s.environment,
                "runtimeId": runtime_id,
                "status": status.as_str(),
            }),
            Event::Command {
                runtime_id,
                action,
                target,
                value,
                ..
            } if action == "SET_LOGGER_LEVEL" => json!({
                "eventType": "LOG_LEVEL_CHANGE",
                "environmentId": s.environment_id.to_string(),
                "environmentName": s.environment,
                "runtimeId": runtime_id,
                "loggerName": target,
                "logLevel": value,
            }),
            _ => return None,
        };
        Some(v.to_string())
    }
}

/// One SSE frame. JSON text has no raw newlines, so one `data:` line suffices.
fn frame(id: u64, name: &str, data: &Value) -> String {
    format!("id: {id}\nevent: {name}\ndata: {data}\n\n")
}

/// Decides per event whether a subscriber may see it.
pub type Filter = Box<dyn Fn(&Scope) -> bool + Send>;

struct Subscriber {
    /// The user the stream belongs to, so it can be ended when their
    /// session ends or their permissions change.
    user: Option<i64>,
    filter: Filter,
    tx: SyncSender<String>,
    /// ICP's frames ([`Event::icp_frame`]) instead of SSE text.
    icp: bool,
}

/// The hub.
pub struct Events {
    subscribers: Mutex<Vec<Subscriber>>,
    next_id: AtomicU64,
    queue: usize,
}

impl Default for Events {
    fn default() -> Events {
        Events::new()
    }
}

impl Events {
    /// A hub without subscribers.
    pub fn new() -> Events {
        Events::with_queue(QUEUE)
    }

    /// A hub whose subscribers may have `queue` frames waiting.
    pub fn with_queue(queue: usize) -> Events {
        Events {
            subscribers: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            queue: queue.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Subscriber>> {
        self.subscribers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new subscriber: the receiver starts with a `hello` frame and then
    /// gets every published event `filter` accepts, until it is dropped or
    /// falls [`QUEUE`] frames behind.
    pub fn subscribe(
        &self,
        filter: impl Fn(&Scope) -> bool + Send + 'static,
        now: Millis,
    ) -> Receiver<String> {
        self.subscribe_as(None, filter, now)
    }

    /// [`Events::subscribe`] for a signed-in user; [`Events::end_streams`]
    /// can end it.
    pub fn subscribe_as(
        &self,
        user: Option<i64>,
        filter: impl Fn(&Scope) -> bool + Send + 'static,
        now: Millis,
    ) -> Receiver<String> {
        let (tx, rx) = sync_channel(self.queue);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // Cannot fail: the queue is empty and the receiver alive.
        let _ = tx.try_send(frame(id, "hello", &json!({"at": rfc3339(now)})));
        self.lock().push(Subscriber {
            user,
            filter: Box::new(filter),
            tx,
            icp: false,
        });
        rx
    }

    /// A subscriber for ICP's `/runtime-status` channel: each frame is an
    /// [`Event::icp_frame`] (no hello; events without one are skipped).
    pub fn subscribe_icp(
        &self,
        user: Option<i64>,
        filter: impl Fn(&Scope) -> bool + Send + 'static,
    ) -> Receiver<String> {
        let (tx, rx) = sync_channel(self.queue);
        self.lock().push(Subscriber {
            user,
            filter: Box::new(filter),
            tx,
            icp: true,
        });
        rx
    }

    /// Ends the streams of one user (`Some`), or of every user (`None`):
    /// their filters were decided with permissions that may no longer
    /// hold. Clients reconnect, and so authenticate and are authorized
    /// afresh. Returns how many streams ended.
    pub fn end_streams(&self, user: Option<i64>) -> usize {
        let mut subs = self.lock();
        let before = subs.len();
        subs.retain(|s| user.is_some_and(|u| s.user != Some(u)));
        before - subs.len()
    }

    /// Whether anyone listens (publishers skip look-ups when not).
    pub fn has_subscribers(&self) -> bool {
        !self.lock().is_empty()
    }

    /// Number of subscribers (gone ones are noticed at the next publish).
    pub fn subscriber_count(&self) -> usize {
        self.lock().len()
    }

    /// Delivers `event` to every subscriber whose filter accepts it. Never
    /// blocks: full or closed subscribers are dropped.
    pub fn publish(&self, event: &Event) {
        let mut subs = self.lock();
        if subs.is_empty() {
            return;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let text = frame(id, event.name(), &event.data());
        let icp = subs
            .iter()
            .any(|s| s.icp)
            .then(|| event.icp_frame())
            .flatten();
        let scope = event.scope();
        subs.retain(|s| {
            let text = match (s.icp, &icp) {
                (false, _) => &text,
                (true, Some(t)) => t,
                (true, None) => return true,
            };
            if !(s.filter)(scope) {
                return true;
            }
            match s.tx.try_send(text.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    log::info!(
                        "dropping an event subscriber that fell {} events behind",
                        self.queue
                    );
                    false
                }
                Err(TrySendError::Disconnected(_)) => false,
            }
        });
    }

    /// Publishes several events in order.
    pub fn publish_all(&self, events: &[Event]) {
        for e in events {
            self.publish(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(integration_id: i64) -> Scope {
        Scope {
            project_id: 1,
            integration_id,
            environment_id: 1,
            project: "p".into(),
            integration: format!("i{integration_id}"),
            environment: "dev".into(),
        }
    }

    fn removed(integration_id: i64) -> Event {
        Event::RuntimeRemoved {
            runtime_id: "r".into(),
            at: 0,
            scope: scope(integration_id),
        }
    }

    #[test]
    fn frames_are_filtered_per_subscriber() {
        let hub = Events::new();
        let all = hub.subscribe(|_| true, 0);
        let only2 = hub.subscribe(|s| s.integration_id == 2, 0);
        hub.publish(&removed(1));
        hub.publish(&removed(2));
        let got: Vec<String> = all.try_iter().collect();
        assert_eq!(got.len(), 3);
        assert!(got[0].contains("event: hello\n"), "{}", got[0]);
        assert_eq!(
            got[1],
            "id: 3\nevent: runtime.removed\ndata: {\"at\":\"1970-01-01T00:00:00.000Z\",\"environment\":\"dev\",\"integration\":\"i1\",\"project\":\"p\",\"runtimeId\":\"r\"}\n\n"
        );
        let got: Vec<String> = only2.try_iter().collect();
        assert_eq!(got.len(), 2);
        assert!(got[1].contains("\"integration\":\"i2\""));
    }

    #[test]
    fn a_slow_subscriber_is_dropped_without_blocking() {
        let hub = Events::with_queue(3);
        let slow = hub.subscribe(|_| true, 0);
        let fast = hub.subscribe(|_| true, 0);
        for _ in 0..5 {
            hub.publish(&removed(1));
            fast.try_iter().for_each(drop);
        }
        assert_eq!(hub.subscriber_count(), 1);
        assert_eq!(slow.try_iter().count(), 3);
        assert!(slow.recv().is_err(), "the slow receiver is disconnected");
        drop(fast);
        hub.publish(&removed(1));
        assert!(!hub.has_subscribers());
    }
}
