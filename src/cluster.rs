//! Several icpd nodes on one PostgreSQL database.
//!
//! Every node serves every request: runtimes' heartbeats may land on any
//! of them through a load balancer. What must be one truth is in the
//! database; what each node keeps in memory (the liveness table, pending
//! commands) follows the others through two mechanisms:
//!
//! - **The change feed.** The store appends a change to
//!   `cluster_changes` in the transaction of every write the others must
//!   hear of (a runtime registered, changed, removed, its status, a
//!   command issued or settled) and `NOTIFY`s at commit. Each node's
//!   feed thread waits for the notification (at most [`POLL_EVERY`], the
//!   polling fallback for poolers that drop `LISTEN`), reads the rows
//!   after the last one it applied, in commit order, and applies the
//!   other nodes' changes to its memory and its live-event subscribers.
//!   Secrets and revocations need no feed: every lookup checks the
//!   secrets generation in the database (see `Store::secrets_generation`).
//! - **The sweep lease.** One node at a time marks silent runtimes
//!   OFFLINE: the holder of the `sweep` lease in `cluster_leases`, taken
//!   and renewed every [`RENEW_EVERY`] for [`LEASE_TTL`] by the
//!   database's clock. Before it sweeps, the leader reads the stored
//!   last-seen times of the runtimes it has not heard from (other nodes
//!   flush theirs at least every second); its OFFLINE writes are fenced
//!   (the transaction checks that it still holds the lease at its epoch,
//!   by the database's clock) and conditional (not if a later heartbeat
//!   is stored), so a paused former leader cannot write. A leader that
//!   cannot renew stops sweeping when its lease would have run out by its
//!   own monotonic clock, measured from before the last renewal was sent.
//!
//! Rate limits and connection caps stay per node.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::commands::Commands;
use crate::error::{Error, Result};
use crate::events::{self, Event, Events};
use crate::liveness::Liveness;
use crate::model::cluster::{Change, LeaseState};
use crate::store::{Fence, Store};
use crate::time::{now_millis, Millis};

/// The lease of the OFFLINE sweep.
pub const SWEEP_LEASE: &str = "sweep";
/// How long a lease lasts after its last renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(10);
/// How often the leader renews and the others try to take the lease.
pub const RENEW_EVERY: Duration = Duration::from_secs(1);
/// The longest a change waits for its notification before the feed
/// thread polls anyway.
pub const POLL_EVERY: Duration = Duration::from_millis(250);
/// Changes are kept this long, then pruned by the leader.
const KEEP_CHANGES: Millis = 10 * 60 * 1000;
/// Changes read per query.
const BATCH: i64 = 2_000;

/// What `/healthz` and `/metrics` say about the cluster.
#[derive(Debug, Clone)]
pub struct ClusterStatus {
    pub node: String,
    pub leader: Option<String>,
    pub leading: bool,
    pub database_reachable: bool,
    pub changes_applied: i64,
    /// Write transactions this node committed (or tried), and the writes
    /// they carried (group commit).
    pub write_commits: u64,
    pub writes: u64,
}

/// This node's part in the cluster.
pub struct Cluster {
    node: String,
    store: Arc<Store>,
    leading: AtomicBool,
    /// When this node's lease runs out by its own clock, if it holds it.
    lease_until: Mutex<Option<Instant>>,
    leader: Mutex<Option<String>>,
    database_reachable: AtomicBool,
    /// The last change applied.
    applied: AtomicI64,
}

/// A node id: the host name (or `node_name`) and a random suffix, so a
/// restarted node is a new holder.
pub fn node_id(name: &str) -> Result<String> {
    let suffix: [u8; 4] = crate::master_key::random_bytes()?;
    let hex: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{name}-{hex}"))
}

/// The machine's host name, for the default node name.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(name) if ok && !name.is_empty() => name.to_owned(),
        _ => "icpd".to_owned(),
    }
}

impl Cluster {
    /// Joins the cluster on `store` as `node`: from the change read
    /// before this node loaded its memory (`since`).
    pub fn new(store: Arc<Store>, node: String, since: i64) -> Cluster {
        Cluster {
            node,
            store,
            leading: AtomicBool::new(false),
            lease_until: Mutex::new(None),
            leader: Mutex::new(None),
            database_reachable: AtomicBool::new(true),
            applied: AtomicI64::new(since),
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Whether this node holds the sweep lease now (by its own clock).
    pub fn is_leader(&self) -> bool {
        self.leading.load(Ordering::Acquire)
            && self
                .lease_until
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some_and(|until| Instant::now() < until)
    }

    pub fn status(&self) -> ClusterStatus {
        let leading = self.is_leader();
        let (write_commits, writes) = self
            .store
            .write_sharing()
            .map_or((0, 0), |w| (w.commits, w.writes));
        ClusterStatus {
            node: self.node.clone(),
            leader: if leading {
                Some(self.node.clone())
            } else {
                self.leader
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
            },
            leading,
            database_reachable: self.database_reachable.load(Ordering::Acquire),
            changes_applied: self.applied.load(Ordering::Acquire),
            write_commits,
            writes,
        }
    }

    /// One round of the lease: take or renew it; on failure keep leading
    /// only until the lease would have run out. Returns how long to wait
    /// before the next round: [`RENEW_EVERY`], or less when another
    /// node's lease runs out sooner (so a dead leader's lease is taken
    /// over as it runs out, not up to a round later).
    fn lease_round(&self, liveness: &Liveness) -> Duration {
        let sent = Instant::now();
        let ttl = i64::try_from(LEASE_TTL.as_millis()).unwrap_or(i64::MAX);
        let taken = self
            .store
            .write(|tx| tx.take_lease(SWEEP_LEASE, &self.node, ttl));
        let mut until = self.lease_until.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = RENEW_EVERY;
        match taken {
            Ok(LeaseState::Held { epoch }) => {
                self.database_reachable.store(true, Ordering::Release);
                if !self.leading.swap(true, Ordering::AcqRel) {
                    log::info!(
                        "this node ({}) now runs the OFFLINE sweep (lease epoch {epoch})",
                        self.node
                    );
                }
                *until = Some(sent + LEASE_TTL);
                *self.leader.lock().unwrap_or_else(|p| p.into_inner()) = Some(self.node.clone());
                liveness.set_fence(Some(Fence {
                    lease: SWEEP_LEASE.into(),
                    holder: self.node.clone(),
                    epoch,
                }));
            }
            Ok(LeaseState::Other {
                holder,
                remaining_ms,
            }) => {
                self.database_reachable.store(true, Ordering::Release);
                next = RENEW_EVERY.min(Duration::from_millis(
                    u64::try_from(remaining_ms).unwrap_or(0) + 1,
                ));
                if self.leading.swap(false, Ordering::AcqRel) {
                    log::warn!("node {holder} took the OFFLINE sweep over from this node");
                }
                *until = None;
                liveness.set_fence(None);
                *self.leader.lock().unwrap_or_else(|p| p.into_inner()) = Some(holder);
            }
            Err(e) => {
                if self.database_reachable.swap(false, Ordering::AcqRel) {
                    log::warn!("cannot reach the database to renew the sweep lease: {e}");
                }
                if until.is_some_and(|u| Instant::now() >= u) {
                    *until = None;
                    self.leading.store(false, Ordering::Release);
                    liveness.set_fence(None);
                    log::warn!(
                        "this node's sweep lease ran out without the database: it stops sweeping"
                    );
                }
            }
        }
        next
    }

    /// Reads and applies the changes after the last one applied; returns
    /// how many were read.
    fn feed_round(
        &self,
        liveness: &Liveness,
        commands: &Commands,
        events: &Events,
    ) -> Result<usize> {
        let after = self.applied.load(Ordering::Acquire);
        let rows = self.store.read(|tx| tx.changes_after(after, BATCH))?;
        let now = now_millis();
        for row in &rows {
            if row.node != self.node {
                self.apply(&row.change, liveness, commands, events, now)?;
            }
            self.applied.store(row.seq, Ordering::Release);
        }
        Ok(rows.len())
    }

    fn apply(
        &self,
        change: &Change,
        liveness: &Liveness,
        commands: &Commands,
        events: &Events,
        now: Millis,
    ) -> Result<()> {
        liveness.apply_change(change, now);
        commands.apply_change(&self.store, change, now)?;
        if !events.has_subscribers() {
            return Ok(());
        }
        let event = match change {
            Change::Status {
                runtime_id,
                status,
                at,
            } => self
                .store
                .read(|tx| events::runtime_info(tx, runtime_id))?
                .map(|info| Event::RuntimeStatus {
                    runtime_id: runtime_id.clone(),
                    status: *status,
                    at: *at,
                    scope: info.scope,
                }),
            Change::Runtime {
                runtime_id,
                created: true,
                at,
                ..
            } => self
                .store
                .read(|tx| events::runtime_info(tx, runtime_id))?
                .map(|info| Event::RuntimeRegistered {
                    runtime_id: runtime_id.clone(),
                    info,
                    at: *at,
                }),
            Change::Removed {
                runtime_id,
                scope: Some((integration_id, environment_id)),
                ..
            } => self
                .store
                .read(|tx| events::scope_of(tx, *integration_id, *environment_id))?
                .map(|scope| Event::RuntimeRemoved {
                    runtime_id: runtime_id.clone(),
                    at: now,
                    scope,
                }),
            Change::Command { command_id, at, .. } => self.store.read(|tx| {
                let Some(row) = tx.command(command_id)? else {
                    return Ok(None);
                };
                Ok(
                    events::scope_of(tx, row.integration_id, row.environment_id)?
                        .map(|scope| Event::command(&row, row.status, *at, scope)),
                )
            })?,
            _ => None,
        };
        if let Some(e) = event {
            events.publish(&e);
        }
        Ok(())
    }

    /// Before a sweep by the leader: the stored last-seen times of the
    /// runtimes this node has not heard from for a timeout.
    pub fn refresh_expiring(&self, liveness: &Liveness, now: Millis) -> Result<()> {
        let expiring = liveness.expiring(now);
        if expiring.is_empty() {
            return Ok(());
        }
        let seen = self.store.read(|tx| tx.last_heartbeats(&expiring))?;
        liveness.merge_seen(&seen);
        Ok(())
    }

    /// Starts the lease and feed threads; they end when `stop` is set
    /// (the lease is then given up).
    pub fn spawn(
        self: &Arc<Self>,
        liveness: Arc<Liveness>,
        commands: Arc<Commands>,
        events: Arc<Events>,
        stop: Arc<AtomicBool>,
    ) -> Result<Vec<JoinHandle<()>>> {
        let lease = {
            let (me, liveness, stop) = (self.clone(), liveness.clone(), stop.clone());
            std::thread::Builder::new()
                .name("cluster-lease".into())
                .spawn(move || {
                    let mut pruned = Instant::now();
                    while !stop.load(Ordering::SeqCst) {
                        let next = me.lease_round(&liveness);
                        if me.is_leader() && pruned.elapsed() >= Duration::from_secs(60) {
                            pruned = Instant::now();
                            let before = now_millis() - KEEP_CHANGES;
                            if let Err(e) = me.store.write(|tx| tx.prune_changes(before)) {
                                log::warn!("pruning the change feed failed (will retry): {e}");
                            }
                        }
                        std::thread::park_timeout(next);
                    }
                    if me.leading.load(Ordering::Acquire) {
                        liveness.set_fence(None);
                        match me.store.write(|tx| tx.release_lease(SWEEP_LEASE, &me.node)) {
                            Ok(_) => log::info!("gave up the sweep lease"),
                            Err(e) => log::warn!("could not give up the sweep lease: {e}"),
                        }
                    }
                })
                .map_err(|e| Error::io("starting the cluster lease thread", e))?
        };
        let feed = {
            let (me, stop) = (self.clone(), stop);
            std::thread::Builder::new()
                .name("cluster-feed".into())
                .spawn(move || {
                    let mut listener = me.store.change_listener();
                    while !stop.load(Ordering::SeqCst) {
                        match &mut listener {
                            Some(l) => {
                                l.wait(POLL_EVERY);
                            }
                            None => std::thread::park_timeout(POLL_EVERY),
                        }
                        loop {
                            match me.feed_round(&liveness, &commands, &events) {
                                Ok(n) if n as i64 == BATCH => continue,
                                Ok(_) => break,
                                Err(e) => {
                                    log::debug!("reading the change feed failed (will retry): {e}");
                                    break;
                                }
                            }
                        }
                    }
                })
                .map_err(|e| Error::io("starting the cluster feed thread", e))?
        };
        Ok(vec![lease, feed])
    }
}
