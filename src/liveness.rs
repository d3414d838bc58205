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
//! **Self-preservation.** When one sweep would turn more than half of the
//! RUNNING runtimes OFFLINE at once (with at least
//! [`PRESERVATION_MIN_RUNNING`] running), the likelier story is that icpd
//! itself was cut off (paused, its network down) rather than that most of
//! the fleet died together. The sweep then holds those transitions, warns,
//! and reports it ([`Liveness::preservation`], shown by `/healthz`); it
//! resumes on its own once heartbeats return and the share drops to half or
//! less. If the fleet really did go away, the hold ends after
//! [`PRESERVATION_MAX_TIMEOUTS`] heartbeat timeouts, with a warning.
//!
//! The flush publishes what it wrote (`runtime.status`, and `runtime.removed`
//! for replaced runtimes it deleted) to [`Events`] once it has committed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::config::HeartbeatLimits;
use crate::error::Result;
use crate::events::{self, Event, Events};
use crate::model::cluster::Change;
use crate::runtimes::Status;
use crate::store::{Fence, LivenessRow, Store, Transition};
use crate::time::Millis;

/// Self-preservation applies from this many RUNNING runtimes on: in a
/// smaller fleet, half of it stopping together is ordinary.
pub const PRESERVATION_MIN_RUNNING: usize = 10;

/// A hold lasts at most this many heartbeat timeouts.
pub const PRESERVATION_MAX_TIMEOUTS: i64 = 10;

/// A self-preservation hold in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preservation {
    /// When the hold began.
    pub since: Millis,
    /// Runtimes past the timeout at the last sweep, kept RUNNING.
    pub held: usize,
    /// RUNNING runtimes at the last sweep (held ones included).
    pub running: usize,
}

/// Known runtimes by status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusCounts {
    pub running: usize,
    pub offline: usize,
}

/// The in-memory state of every known runtime.
pub struct Liveness {
    state: Mutex<State>,
    /// Several nodes share the database: a sweep's OFFLINE is written
    /// only under the sweep lease's fence (see `crate::cluster`).
    clustered: bool,
    /// The sweep lease this node holds, if it leads.
    fence: Mutex<Option<Fence>>,
    timeout: Millis,
    started_at: Millis,
    /// Last-seen times count from here at the earliest, like from
    /// `started_at`: set when this node starts to lead the sweep, or its
    /// database comes back (see [`Liveness::grace`]).
    grace_from: std::sync::atomic::AtomicI64,
    events: Arc<Events>,
    limits: HeartbeatLimits,
}

/// No heartbeat rate limits (the daemon sets the configured ones).
const NO_LIMITS: HeartbeatLimits = HeartbeatLimits {
    full_per_second: 0.0,
    full_burst: 1.0,
    delta_per_second: 0.0,
    delta_burst: 1.0,
};

/// A token bucket: `tokens` as of `at`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Millis,
}

impl Bucket {
    fn full(burst: f64, now: Millis) -> Bucket {
        Bucket {
            tokens: burst,
            at: now,
        }
    }

    /// Takes one token; when there is none, the seconds until there is.
    fn take(&mut self, per_second: f64, burst: f64, now: Millis) -> std::result::Result<(), u64> {
        if per_second <= 0.0 {
            return Ok(());
        }
        let elapsed = (now - self.at).max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * per_second).min(burst);
        self.at = now.max(self.at);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - self.tokens) / per_second).ceil().max(1.0) as u64)
        }
    }
}

#[derive(Default)]
struct State {
    runtimes: HashMap<String, Live>,
    /// Runtimes whose last-seen time changed since the last flush.
    seen: HashSet<String>,
    transitions: Vec<Transition>,
    deleted: Vec<String>,
    preservation: Option<Preservation>,
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
    /// Rate limits of full and delta heartbeats.
    full_bucket: Bucket,
    delta_bucket: Bucket,
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
    /// Over the runtime's delta rate limit: not recorded; retry after this
    /// many seconds.
    Limited { retry_after_secs: u64 },
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
                    full_bucket: Bucket::full(f64::MAX, now),
                    delta_bucket: Bucket::full(f64::MAX, now),
                },
            );
        }
        Ok(Liveness {
            state: Mutex::new(state),
            clustered: false,
            fence: Mutex::new(None),
            timeout: i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX),
            started_at: now,
            grace_from: std::sync::atomic::AtomicI64::new(now),
            events: Arc::new(Events::new()),
            limits: NO_LIMITS,
        })
    }

    /// Applies heartbeat rate limits per runtime.
    pub fn with_limits(mut self, limits: HeartbeatLimits) -> Liveness {
        self.limits = limits;
        self
    }

    /// Takes a full-heartbeat token of a known runtime (a new one has no
    /// bucket yet); when there is none, the seconds to wait.
    pub fn admit_full(&self, runtime_id: &str, now: Millis) -> std::result::Result<(), u64> {
        let l = self.limits;
        match self.lock().runtimes.get_mut(runtime_id) {
            Some(live) => live.full_bucket.take(l.full_per_second, l.full_burst, now),
            None => Ok(()),
        }
    }

    /// From `now`, no runtime is marked OFFLINE before one more full
    /// heartbeat timeout: as after a start, when this node begins to lead
    /// the sweep, or the database comes back after an outage (the other
    /// nodes' last-seen times of meanwhile are still on their way to it).
    pub fn grace(&self, now: Millis) {
        self.grace_from
            .fetch_max(now, std::sync::atomic::Ordering::AcqRel);
    }

    /// When a RUNNING runtime times out: one timeout after it was last
    /// heard, or after the start of this process or of its grace.
    fn deadline(&self, live: &Live) -> Millis {
        live.last_seen
            .max(self.grace_from())
            .saturating_add(self.timeout)
    }

    fn grace_from(&self) -> Millis {
        self.grace_from
            .load(std::sync::atomic::Ordering::Acquire)
            .max(self.started_at)
    }

    /// Marks the table as one of several nodes' (see [`Liveness::flush`]).
    pub fn clustered(mut self) -> Liveness {
        self.clustered = true;
        self
    }

    /// Sets (or clears) the sweep lease this node holds.
    pub fn set_fence(&self, fence: Option<Fence>) {
        *self.fence.lock().unwrap_or_else(|p| p.into_inner()) = fence;
    }

    /// RUNNING runtimes whose heartbeat timeout passed by what this node
    /// heard: the ones whose last-seen time a leader reads from the
    /// database (other nodes may have heard them) before it sweeps.
    pub fn expiring(&self, now: Millis) -> Vec<String> {
        let st = self.lock();
        st.runtimes
            .iter()
            .filter(|(_, l)| l.status == Status::Running && self.deadline(l) <= now)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Takes in last-seen times another node stored (never moving one back).
    pub fn merge_seen(&self, seen: &[(String, Millis)]) {
        let mut st = self.lock();
        for (id, at) in seen {
            if let Some(live) = st.runtimes.get_mut(id) {
                live.last_seen = live.last_seen.max(*at);
            }
        }
    }

    /// Applies a change another node committed (from the change feed).
    /// Returns whether it changed this table.
    pub fn apply_change(&self, change: &Change, now: Millis) -> bool {
        let mut guard = self.lock();
        let st = &mut *guard;
        match change {
            Change::Runtime {
                runtime_id,
                key_id,
                hash,
                status,
                slot,
                ..
            } => {
                match st.runtimes.get_mut(runtime_id) {
                    Some(live) => {
                        live.key_id = key_id.clone();
                        live.hash = hash.clone();
                        live.slot = slot.clone();
                        if let Some(s) = status {
                            live.status = *s;
                        }
                    }
                    None => {
                        st.runtimes.insert(
                            runtime_id.clone(),
                            Live {
                                key_id: key_id.clone(),
                                hash: hash.clone(),
                                // Heard by the other node just now.
                                last_seen: now,
                                status: status.unwrap_or(Status::Running),
                                slot: slot.clone(),
                                full_bucket: Bucket::full(self.limits.full_burst, now),
                                delta_bucket: Bucket::full(self.limits.delta_burst, now),
                            },
                        );
                    }
                }
                true
            }
            Change::Status {
                runtime_id, status, ..
            } => match st.runtimes.get_mut(runtime_id) {
                Some(live) if live.status != *status => {
                    live.status = *status;
                    if *status == Status::Running {
                        live.last_seen = live.last_seen.max(now);
                    }
                    true
                }
                _ => false,
            },
            Change::Removed { runtime_id, .. } => {
                st.seen.remove(runtime_id);
                st.transitions.retain(|t| &t.runtime_id != runtime_id);
                st.runtimes.remove(runtime_id).is_some()
            }
            Change::Command { .. } => false,
        }
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

    /// The current statuses of several runtimes, in order, under one lock
    /// (a view of hundreds of replicas would otherwise take the lock every
    /// heartbeat needs once per replica).
    pub fn statuses<'a>(
        &self,
        runtime_ids: impl IntoIterator<Item = &'a str>,
    ) -> Vec<Option<Status>> {
        let st = self.lock();
        runtime_ids
            .into_iter()
            .map(|id| st.runtimes.get(id).map(|l| l.status))
            .collect()
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
        let l = self.limits;
        if let Err(retry_after_secs) =
            live.delta_bucket
                .take(l.delta_per_second, l.delta_burst, now)
        {
            return DeltaOutcome::Limited { retry_after_secs };
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
                if_silent_since: None,
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
                        if_silent_since: None,
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
                        // This full heartbeat took the first token.
                        full_bucket: Bucket::full((self.limits.full_burst - 1.0).max(0.0), now),
                        delta_bucket: Bucket::full(self.limits.delta_burst, now),
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

    /// How many known runtimes are RUNNING and how many OFFLINE (one pass
    /// under the lock, like a sweep; for the metrics scrape).
    pub fn counts(&self) -> StatusCounts {
        let st = self.lock();
        let running = st
            .runtimes
            .values()
            .filter(|l| l.status == Status::Running)
            .count();
        StatusCounts {
            running,
            offline: st.runtimes.len() - running,
        }
    }

    /// The self-preservation hold in progress, if any.
    pub fn preservation(&self) -> Option<Preservation> {
        self.lock().preservation
    }

    /// Marks runtimes OFFLINE whose last heartbeat is older than the timeout,
    /// unless self-preservation holds them (see the module documentation).
    /// A named runtime that goes OFFLINE while another RUNNING runtime holds
    /// its name (a node restarted with a new runtimeId) is deleted instead.
    /// Returns how many runtimes changed.
    pub fn sweep(&self, now: Millis) -> usize {
        let mut guard = self.lock();
        let st = &mut *guard;
        // One pass that allocates nothing unless something expired: this
        // holds the lock every heartbeat needs, over every runtime.
        let deadline = |live: &Live| self.deadline(live);
        let expired: Vec<String> = st
            .runtimes
            .iter()
            .filter(|(_, l)| l.status == Status::Running && deadline(l) <= now)
            .map(|(id, _)| id.clone())
            .collect();
        if expired.is_empty() {
            if let Some(p) = st.preservation.take() {
                log::warn!(
                    "self-preservation over after {} s: every runtime is within the heartbeat timeout again",
                    (now - p.since) / 1000
                );
            }
            return 0;
        }
        let running = st
            .runtimes
            .values()
            .filter(|l| l.status == Status::Running)
            .count();
        if running >= PRESERVATION_MIN_RUNNING && expired.len() * 2 > running {
            let since = st.preservation.map_or(now, |p| p.since);
            if now - since < self.timeout.saturating_mul(PRESERVATION_MAX_TIMEOUTS) {
                if st.preservation.is_none() {
                    log::warn!(
                        "self-preservation: {} of {running} RUNNING runtimes missed the heartbeat timeout at once; \
                         keeping them RUNNING until heartbeats return (was icpd paused or cut off from the network?)",
                        expired.len()
                    );
                }
                st.preservation = Some(Preservation {
                    since,
                    held: expired.len(),
                    running,
                });
                return 0;
            }
            log::warn!(
                "self-preservation gave up after {} s: {} of {running} runtimes are still silent; marking them OFFLINE",
                (now - since) / 1000,
                expired.len()
            );
        } else if let Some(p) = st.preservation {
            log::warn!(
                "self-preservation over after {} s: {} of {running} runtimes still silent, marking those OFFLINE",
                (now - p.since) / 1000,
                expired.len()
            );
        }
        st.preservation = None;
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
                    // Written only while no node stored a later heartbeat.
                    if_silent_since: Some(now - self.timeout),
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
        let fence = if self.clustered {
            // Without the lease, a sweep's OFFLINE must not be written:
            // a fence no one holds makes sure of it.
            Some(
                self.fence
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
                    .unwrap_or(Fence {
                        lease: crate::cluster::SWEEP_LEASE.into(),
                        holder: String::new(),
                        epoch: -1,
                    }),
            )
        } else {
            None
        };
        let written = store.write(|tx| {
            let mut removed = Vec::new();
            if listening {
                for id in &deleted {
                    if let Some(info) = events::runtime_info(tx, id)? {
                        removed.push((id, info.scope));
                    }
                }
            }
            let applied = tx.record_liveness(&seen, &transitions, &deleted, fence.as_ref())?;
            let mut changed = Vec::new();
            if listening {
                for t in &applied {
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
            Ok((removed, applied, changed))
        });
        match written {
            Ok((removed, applied, changed)) => {
                self.settle(&transitions, &applied, now);
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

    /// After a flush: the database decided. A sweep's OFFLINE it did not
    /// write (another node stored a later heartbeat, or this node lost
    /// the lease) is RUNNING again here, counting from `now`; a runtime
    /// it found heard after another node marked it OFFLINE is RUNNING.
    fn settle(&self, sent: &[Transition], applied: &[Transition], now: Millis) {
        let mut st = self.lock();
        for t in sent {
            let kept = applied
                .iter()
                .any(|a| a.runtime_id == t.runtime_id && a.status == t.status && a.at == t.at);
            if t.if_silent_since.is_some() && !kept {
                if let Some(live) = st.runtimes.get_mut(&t.runtime_id) {
                    if live.status == Status::Offline {
                        live.status = Status::Running;
                        live.last_seen = live.last_seen.max(now);
                    }
                }
            }
        }
        for a in applied {
            if let Some(live) = st.runtimes.get_mut(&a.runtime_id) {
                if a.status == Status::Running {
                    live.status = Status::Running;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT_MS: Millis = 2_000;

    /// A table with `n` runtimes `r0..` registered at time 0 (the process
    /// started at 0 too), on a new store.
    fn fleet(n: usize, tag: &str) -> (Liveness, std::path::PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("icpd-unit-liveness-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir.join("icp.db")).unwrap();
        let l = Liveness::load(&store, std::time::Duration::from_millis(2_000), 0).unwrap();
        for i in 0..n {
            l.full(
                FullBeat {
                    runtime_id: &format!("r{i}"),
                    key_id: "k",
                    hash: Some("h"),
                    reported: Status::Running,
                    slot: None,
                    created: true,
                },
                &[],
                0,
            );
        }
        (l, dir)
    }

    fn beat(l: &Liveness, ids: std::ops::Range<usize>, now: Millis) {
        for i in ids {
            let out = l.delta(&format!("r{i}"), "k", "h", now);
            assert_eq!(
                out,
                DeltaOutcome::Accepted {
                    full_required: false
                }
            );
        }
    }

    fn offline(l: &Liveness, n: usize) -> usize {
        (0..n)
            .filter(|i| l.status(&format!("r{i}")) == Some(Status::Offline))
            .count()
    }

    #[test]
    fn more_than_half_timing_out_at_once_is_held_until_heartbeats_return() {
        let (l, dir) = fleet(12, "hold");
        // 5 keep sending, 7 fall silent: 7 of 12 is more than half.
        beat(&l, 0..5, 1_500);
        assert_eq!(l.sweep(2_100), 0);
        assert_eq!(
            l.preservation(),
            Some(Preservation {
                since: 2_100,
                held: 7,
                running: 12
            })
        );
        assert_eq!(offline(&l, 12), 0);
        // Still held a while later (the 5 keep sending); `since` stays.
        beat(&l, 0..5, 3_000);
        assert_eq!(l.sweep(3_100), 0);
        assert_eq!(l.preservation().map(|p| p.since), Some(2_100));
        // 5 of the 7 come back: 2 of 12 silent is ordinary, those go OFFLINE.
        beat(&l, 0..10, 3_200);
        assert_eq!(l.sweep(3_300), 2);
        assert_eq!(l.preservation(), None);
        assert_eq!(offline(&l, 12), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn half_or_fewer_and_small_fleets_go_offline_as_usual() {
        let (l, dir) = fleet(12, "half");
        beat(&l, 0..6, 1_500);
        assert_eq!(l.sweep(2_100), 6, "exactly half is not held");
        assert_eq!(l.preservation(), None);
        let _ = std::fs::remove_dir_all(&dir);

        let n = PRESERVATION_MIN_RUNNING - 1;
        let (l, dir) = fleet(n, "small");
        assert_eq!(l.sweep(2_100), n, "a fleet below the minimum is never held");
        assert_eq!(l.preservation(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_hold_ends_after_the_maximum_if_the_fleet_stays_silent() {
        let (l, dir) = fleet(12, "max");
        assert_eq!(l.sweep(2_100), 0);
        let end = 2_100 + TIMEOUT_MS * PRESERVATION_MAX_TIMEOUTS;
        assert_eq!(l.sweep(end - 1), 0);
        assert!(l.preservation().is_some());
        assert_eq!(l.sweep(end), 12);
        assert_eq!(l.preservation(), None);
        assert_eq!(offline(&l, 12), 12);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
