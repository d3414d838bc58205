//! Liveness: which runtimes are RUNNING, kept in memory.
//!
//! A delta heartbeat only touches this table (one mutex, one hash lookup).
//! Everything that must reach SQLite (last-seen times, RUNNING/OFFLINE
//! transitions, replaced runtimes) is queued here in the order it happened
//! and written by [`Liveness::flush`] in one transaction, which the server
//! calls at least every second and at once when a transition is waiting.
//!
//! The sweeper ([`Liveness::sweep`]) marks a runtime OFFLINE when nothing was
//! heard from it for the heartbeat timeout. After icpd starts, a runtime's
//! last-seen time counts from the start of the process at the earliest, so
//! no runtime is marked OFFLINE before one full timeout has passed: runtimes
//! need that long to find the new process.
//!
//! The flush publishes what it wrote (`runtime.status`, and `runtime.removed`
//! for replaced runtimes it deleted) to [`Events`] once it has committed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::error::Result;
use crate::events::{self, Event, Events};
use crate::runtimes::Status;
use crate::store::{LivenessRow, Store, Transition};
use crate::time::Millis;

/// The in-memory state of every known runtime.
pub struct Liveness {
    state: Mutex<State>,
    timeout: Millis,
    started_at: Millis,
    events: Arc<Events>,
}

#[derive(Default)]
struct State {
    runtimes: HashMap<String, Live>,
    /// Runtimes whose last-seen time changed since the last flush.
    seen: HashSet<String>,
    transitions: Vec<Transition>,
    deleted: Vec<String>,
}

/// (integration, environment, node name): where a named runtime sits; a new
/// runtime in the same slot replaces an OFFLINE one.
type Slot = (i64, i64, String);

struct Live {
    key_id: String,
    hash: Option<String>,
    last_seen: Millis,
    status: Status,
    slot: Option<Slot>,
}

/// What a delta heartbeat found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaOutcome {
    /// No such runtime: it must send a full heartbeat.
    Unknown,
    /// The runtime was registered under another secret.
    OtherSecret,
    /// Recorded; `full_required` when the stored hash differs.
    Accepted { full_required: bool },
}

/// The facts of an accepted full heartbeat that liveness needs.
#[derive(Debug, Clone)]
pub struct FullBeat<'a> {
    pub runtime_id: &'a str,
    pub key_id: &'a str,
    pub hash: Option<&'a str>,
    pub reported: Status,
    pub slot: Option<(i64, i64, String)>,
    /// The store inserted the runtime (with its first history entry) in this heartbeat.
    pub created: bool,
}

impl Liveness {
    /// Builds the table from the stored runtimes.
    pub fn load(store: &Store, timeout: std::time::Duration, now: Millis) -> Result<Liveness> {
        let rows = store.read(|tx| tx.liveness_rows())?;
        let mut state = State::default();
        for LivenessRow {
            runtime_id,
            key_id,
            runtime_hash,
            last_heartbeat,
            status,
            integration_id,
            environment_id,
            name,
        } in rows
        {
            let slot = name.map(|n| (integration_id, environment_id, n));
            state.runtimes.insert(
                runtime_id,
                Live {
                    key_id,
                    hash: runtime_hash,
                    last_seen: last_heartbeat,
                    status,
                    slot,
                },
            );
        }
        Ok(Liveness {
            state: Mutex::new(state),
            timeout: i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX),
            started_at: now,
            events: Arc::new(Events::new()),
        })
    }

    /// Publishes flushed transitions and deletions to `events`.
    pub fn with_events(mut self, events: Arc<Events>) -> Liveness {
        self.events = events;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current status of a runtime, if known.
    pub fn status(&self, runtime_id: &str) -> Option<Status> {
        self.lock().runtimes.get(runtime_id).map(|l| l.status)
    }

    /// How many runtimes are known.
    pub fn len(&self) -> usize {
        self.lock().runtimes.len()
    }

    /// True when no runtime is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records a delta heartbeat: memory only.
    pub fn delta(&self, runtime_id: &str, key_id: &str, hash: &str, now: Millis) -> DeltaOutcome {
        let mut guard = self.lock();
        let st = &mut *guard;
        let Some(live) = st.runtimes.get_mut(runtime_id) else {
            return DeltaOutcome::Unknown;
        };
        if live.key_id != key_id {
            return DeltaOutcome::OtherSecret;
        }
        live.last_seen = live.last_seen.max(now);
        let full_required = live.hash.as_deref() != Some(hash);
        if live.status == Status::Offline {
            live.status = Status::Running;
            st.transitions.push(Transition {
                runtime_id: runtime_id.to_string(),
                status: Status::Running,
                at: now,
                reason: "heartbeat received".into(),
            });
        }
        if !st.seen.contains(runtime_id) {
            st.seen.insert(runtime_id.to_string());
        }
        DeltaOutcome::Accepted { full_required }
    }

    /// Records an accepted full heartbeat (after the store committed it).
    pub fn full(&self, beat: FullBeat, replaced: &[String], now: Millis) {
        let mut guard = self.lock();
        let st = &mut *guard;
        for id in replaced {
            st.runtimes.remove(id);
            st.seen.remove(id);
        }
        let reason = match beat.reported {
            Status::Running => "full heartbeat received",
            Status::Offline => "runtime reported OFFLINE",
        };
        match st.runtimes.get_mut(beat.runtime_id) {
            Some(live) if !beat.created => {
                live.key_id = beat.key_id.to_string();
                live.hash = beat.hash.map(str::to_string);
                live.last_seen = live.last_seen.max(now);
                live.slot = beat.slot;
                // The store writes the row only when it changed, so the
                // last-seen time goes out with the next flush.
                st.seen.insert(beat.runtime_id.to_string());
                if live.status != beat.reported {
                    live.status = beat.reported;
                    st.transitions.push(Transition {
                        runtime_id: beat.runtime_id.to_string(),
                        status: beat.reported,
                        at: now,
                        reason: reason.into(),
                    });
                }
            }
            _ => {
                st.runtimes.insert(
                    beat.runtime_id.to_string(),
                    Live {
                        key_id: beat.key_id.to_string(),
                        hash: beat.hash.map(str::to_string),
                        last_seen: now,
                        status: beat.reported,
                        slot: beat.slot,
                    },
                );
            }
        }
    }

    /// Forgets a runtime an operator deleted, with anything queued for it,
    /// so its next delta heartbeat is answered with `fullHeartbeatRequired`.
    pub fn remove(&self, runtime_id: &str) {
        let mut guard = self.lock();
        let st = &mut *guard;
        st.runtimes.remove(runtime_id);
        st.seen.remove(runtime_id);
        st.transitions.retain(|t| t.runtime_id != runtime_id);
    }

    /// Marks runtimes OFFLINE whose last heartbeat is older than the timeout.
    /// A named runtime that goes OFFLINE while another RUNNING runtime holds
    /// its name (a node restarted with a new runtimeId) is deleted instead.
    /// Returns how many runtimes changed.
    pub fn sweep(&self, now: Millis) -> usize {
        let mut guard = self.lock();
        let st = &mut *guard;
        // One pass that allocates nothing unless something expired: this
        // holds the lock every heartbeat needs, over every runtime.
        let deadline = |live: &Live| {
            live.last_seen
                .max(self.started_at)
                .saturating_add(self.timeout)
        };
        let expired: Vec<String> = st
            .runtimes
            .iter()
            .filter(|(_, l)| l.status == Status::Running && deadline(l) <= now)
            .map(|(id, _)| id.clone())
            .collect();
        if expired.is_empty() {
            return 0;
        }
        // The names of the expired, and which of them a RUNNING runtime
        // that did not expire holds (a node restarted with a new runtimeId).
        let expired_slots: HashSet<&Slot> = expired
            .iter()
            .filter_map(|id| st.runtimes.get(id).and_then(|l| l.slot.as_ref()))
            .collect();
        let running_slots: HashSet<Slot> = if expired_slots.is_empty() {
            HashSet::new()
        } else {
            st.runtimes
                .values()
                .filter(|l| l.status == Status::Running && deadline(l) > now)
                .filter_map(|l| l.slot.as_ref())
                .filter(|s| expired_slots.contains(s))
                .cloned()
                .collect()
        };
        for id in &expired {
            let replaced = st
                .runtimes
                .get(id)
                .and_then(|l| l.slot.as_ref())
                .is_some_and(|s| running_slots.contains(s));
            if replaced {
                st.runtimes.remove(id);
                st.seen.remove(id);
                st.deleted.push(id.clone());
            } else if let Some(live) = st.runtimes.get_mut(id) {
                live.status = Status::Offline;
                st.transitions.push(Transition {
                    runtime_id: id.clone(),
                    status: Status::Offline,
                    at: now,
                    reason: format!("no heartbeat for {} s", self.timeout / 1000),
                });
            }
        }
        expired.len()
    }

    /// True when a transition or deletion is waiting to be written.
    pub fn has_urgent(&self) -> bool {
        let st = self.lock();
        !st.transitions.is_empty() || !st.deleted.is_empty()
    }

    /// Writes queued last-seen times, transitions and deletions in one
    /// transaction, then publishes the transitions and the deletions (at
    /// `now`). On
    /// failure the queue is put back for the next attempt.
    pub fn flush(&self, store: &Store, now: Millis) -> Result<usize> {
        let (seen, transitions, deleted) = {
            let mut guard = self.lock();
            let st = &mut *guard;
            let seen: Vec<(String, Millis)> = st
                .seen
                .drain()
                .filter_map(|id| st.runtimes.get(&id).map(|l| (id, l.last_seen)))
                .collect();
            (
                seen,
                std::mem::take(&mut st.transitions),
                std::mem::take(&mut st.deleted),
            )
        };
        if seen.is_empty() && transitions.is_empty() && deleted.is_empty() {
            return Ok(0);
        }
        let n = seen.len() + transitions.len() + deleted.len();
        // Handles are looked up in the same transaction (deleted runtimes
        // before they go), and only when someone listens.
        let listening = self.events.has_subscribers();
        let written = store.write(|tx| {
            let mut removed = Vec::new();
            if listening {
                for id in &deleted {
                    if let Some(info) = events::runtime_info(tx, id)? {
                        removed.push((id, info.scope));
                    }
                }
            }
            tx.record_liveness(&seen, &transitions, &deleted)?;
            let mut changed = Vec::new();
            if listening {
                for t in &transitions {
                    if let Some(info) = events::runtime_info(tx, &t.runtime_id)? {
                        changed.push(Event::RuntimeStatus {
                            runtime_id: t.runtime_id.clone(),
                            status: t.status,
                            at: t.at,
                            scope: info.scope,
                        });
                    }
                }
            }
            Ok((removed, changed))
        });
        match written {
            Ok((removed, changed)) => {
                for (id, scope) in removed {
                    self.events.publish(&Event::RuntimeRemoved {
                        runtime_id: id.clone(),
                        at: now,
                        scope,
                    });
                }
                self.events.publish_all(&changed);
                Ok(n)
            }
            Err(e) => {
                let mut st = self.lock();
                st.seen.extend(seen.into_iter().map(|(id, _)| id));
                let later = std::mem::replace(&mut st.transitions, transitions);
                st.transitions.extend(later);
                let later = std::mem::replace(&mut st.deleted, deleted);
                st.deleted.extend(later);
                Err(e)
            }
        }
    }
}
