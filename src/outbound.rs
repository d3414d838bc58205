//! `OutboundPool`: a fixed set of worker threads and a bounded FIFO queue
//! for work that waits on someone else's server: Management API calls to
//! runtimes now, identity providers and Try-It later.
//!
//! Request workers must never wait on a peer (ARCHITECTURE.md, invariant
//! 4), so a handler that needs an outbound call submits a job here and
//! answers at once with something the caller can poll. [`OutboundPool::submit`]
//! never blocks: a full queue is refused ([`PoolFull`]) and counted. Each job
//! runs under `catch_unwind`; a panic is counted and logged and the worker
//! carries on. The pool knows nothing of HTTP: a job is any closure, and
//! bounding its duration is the job's business (`http::outbound` calls
//! carry their own total timeout).

use std::collections::VecDeque;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A unit of work for the pool.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// A job was refused: the queue is at capacity, or the pool is shutting
/// down. The job was dropped without running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolFull {
    /// The queue's capacity.
    pub capacity: usize,
    /// True when refused because [`OutboundPool::shutdown`] has begun.
    pub shutting_down: bool,
}

impl fmt::Display for PoolFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.shutting_down {
            f.write_str("the outbound pool is shutting down; the call was not made")
        } else {
            write!(
                f,
                "too many outbound calls in progress ({} waiting); the call was not made, try again shortly",
                self.capacity
            )
        }
    }
}

impl std::error::Error for PoolFull {}

/// A snapshot of the pool's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Worker threads started.
    pub workers: usize,
    /// The queue's capacity.
    pub capacity: usize,
    /// Jobs waiting now.
    pub queued: usize,
    /// Jobs running now.
    pub running: usize,
    /// Jobs that returned (since the start).
    pub completed: u64,
    /// Jobs refused by `submit` (since the start).
    pub rejected: u64,
    /// Jobs that panicked (since the start).
    pub panicked: u64,
    /// Queued jobs discarded by `shutdown` after its grace.
    pub dropped: u64,
}

struct Queue {
    jobs: VecDeque<Job>,
    running: usize,
    /// `submit` refuses once this is false.
    accepting: bool,
    /// Workers exit once this is true.
    stopped: bool,
    /// Workers that have not exited yet.
    alive: usize,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a job is queued or the pool stops.
    work: Condvar,
    /// Signalled when a job finishes or a worker exits.
    progress: Condvar,
    capacity: usize,
    completed: AtomicU64,
    rejected: AtomicU64,
    panicked: AtomicU64,
    dropped: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Jobs run outside the lock, so a poisoned queue is still consistent.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// N worker threads (`outbound-0` ...) taking jobs from one bounded FIFO
/// queue. Share it behind an `Arc`; every method takes `&self`.
pub struct OutboundPool {
    shared: Arc<Shared>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    count: usize,
}

/// How much lower than the rest of icpd outbound threads run (a Linux
/// nice increment). Outbound work (TLS handshakes with hundreds of
/// runtimes after one desired-state change) is background work; answering
/// heartbeats is not, and must not queue behind it for the CPU.
const NICE_INCREMENT: libc::c_int = 10;

/// Lowers the calling thread's scheduling priority by [`NICE_INCREMENT`]
/// (Linux: a thread's nice value is its own). Best effort: if refused,
/// the thread runs at the process's priority.
fn lower_priority() {
    // SAFETY: gettid and setpriority take and return plain integers and
    // touch no memory of ours.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        let now = libc::getpriority(libc::PRIO_PROCESS, tid);
        libc::setpriority(libc::PRIO_PROCESS, tid, now + NICE_INCREMENT);
    }
}

impl OutboundPool {
    /// Starts `workers` threads (at least one) with room for `capacity`
    /// waiting jobs (at least one).
    pub fn new(workers: usize, capacity: usize) -> std::io::Result<OutboundPool> {
        let workers = workers.max(1);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                running: 0,
                accepting: true,
                stopped: false,
                alive: 0,
            }),
            work: Condvar::new(),
            progress: Condvar::new(),
            capacity: capacity.max(1),
            completed: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            panicked: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        let pool = OutboundPool {
            shared: Arc::clone(&shared),
            workers: Mutex::new(Vec::with_capacity(workers)),
            count: workers,
        };
        for i in 0..workers {
            let s = Arc::clone(&shared);
            s.lock().alive += 1;
            let spawned = std::thread::Builder::new()
                .name(format!("outbound-{i}"))
                .spawn(move || {
                    lower_priority();
                    work(&s)
                });
            match spawned {
                Ok(h) => pool
                    .workers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(h),
                Err(e) => {
                    shared.lock().alive -= 1;
                    // Dropping `pool` stops the workers already started.
                    return Err(e);
                }
            }
        }
        Ok(pool)
    }

    /// Queues `job` to run on a worker, in submission order. Never waits
    /// for room: a full queue, or a pool shutting down, refuses it.
    pub fn submit(&self, job: Job) -> Result<(), PoolFull> {
        let mut q = self.shared.lock();
        if !q.accepting || q.jobs.len() >= self.shared.capacity {
            let refused = PoolFull {
                capacity: self.shared.capacity,
                shutting_down: !q.accepting,
            };
            drop(q);
            self.shared.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(refused);
        }
        q.jobs.push_back(job);
        drop(q);
        self.shared.work.notify_one();
        Ok(())
    }

    /// The counters now.
    pub fn stats(&self) -> PoolStats {
        let q = self.shared.lock();
        PoolStats {
            workers: self.count,
            capacity: self.shared.capacity,
            queued: q.jobs.len(),
            running: q.running,
            completed: self.shared.completed.load(Ordering::Relaxed),
            rejected: self.shared.rejected.load(Ordering::Relaxed),
            panicked: self.shared.panicked.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
        }
    }

    /// Stops taking jobs, lets the queue drain for up to `grace`, then
    /// drops what is still queued and joins the workers. A job still
    /// running when the grace ends is not interrupted: its worker is
    /// detached (and logged) rather than waited for, so shutdown itself
    /// takes about `grace` at most. Calling it again is harmless. Returns
    /// how many workers were left running a call.
    pub fn shutdown(&self, grace: Duration) -> usize {
        let deadline = Instant::now() + grace;
        let mut q = self.shared.lock();
        q.accepting = false;
        while !(q.jobs.is_empty() && q.running == 0) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            q = self
                .shared
                .progress
                .wait_timeout(q, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        q.stopped = true;
        let dropped: Vec<Job> = q.jobs.drain(..).collect();
        drop(q);
        self.shared.work.notify_all();
        if !dropped.is_empty() {
            self.shared
                .dropped
                .fetch_add(dropped.len() as u64, Ordering::Relaxed);
            log::warn!(
                "outbound pool: {} queued calls dropped at shutdown",
                dropped.len()
            );
        }
        // Dropped outside the lock: a job's captured values may do work on drop.
        drop(dropped);
        // Idle workers exit at once; wait for busy ones until the deadline.
        let mut q = self.shared.lock();
        while q.alive > q.running {
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = if left.is_zero() {
                // Idle workers need only be scheduled: a short, bounded wait.
                Duration::from_millis(100)
            } else {
                left
            };
            let (next, timed_out) = self
                .shared
                .progress
                .wait_timeout(q, wait)
                .unwrap_or_else(|e| e.into_inner());
            q = next;
            if timed_out.timed_out() && left.is_zero() {
                break;
            }
        }
        let busy = q.running;
        drop(q);
        let mut handles: Vec<JoinHandle<()>> = self
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        // A worker that has left its loop may not have finished its thread
        // yet: give those a moment, so only the busy ones are detached.
        let settle = Instant::now() + Duration::from_millis(500);
        loop {
            let (finished, running): (Vec<_>, Vec<_>) =
                handles.into_iter().partition(|h| h.is_finished());
            for h in finished {
                let _ = h.join();
            }
            handles = running;
            if handles.len() <= busy || Instant::now() >= settle {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let detached = handles.len();
        if detached > 0 {
            log::warn!(
                "outbound pool: {detached} workers still running a call after the shutdown grace; not waiting for them"
            );
        }
        detached
    }
}

impl Drop for OutboundPool {
    fn drop(&mut self) {
        let _ = self.shutdown(Duration::ZERO);
    }
}

/// A worker: take jobs until the pool stops.
fn work(s: &Shared) {
    loop {
        let job = {
            let mut q = s.lock();
            loop {
                if q.stopped {
                    q.alive -= 1;
                    drop(q);
                    s.progress.notify_all();
                    return;
                }
                if let Some(job) = q.jobs.pop_front() {
                    q.running += 1;
                    break job;
                }
                q = s.work.wait(q).unwrap_or_else(|e| e.into_inner());
            }
        };
        let outcome = catch_unwind(AssertUnwindSafe(job));
        match outcome {
            Ok(()) => {
                s.completed.fetch_add(1, Ordering::Relaxed);
            }
            Err(panic) => {
                s.panicked.fetch_add(1, Ordering::Relaxed);
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|m| m.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic".to_string());
                log::error!("outbound job panicked: {what}");
            }
        }
        s.lock().running -= 1;
        s.progress.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    const WAIT: Duration = Duration::from_secs(30);

    /// A job that blocks until its gate sender is dropped or sends.
    fn gated(started: mpsc::Sender<()>) -> (Job, mpsc::Sender<()>) {
        let (open, gate) = mpsc::channel::<()>();
        let job: Job = Box::new(move || {
            let _ = started.send(());
            let _ = gate.recv();
        });
        (job, open)
    }

    fn wait_until(pool: &OutboundPool, what: &str, cond: impl Fn(&PoolStats) -> bool) {
        let start = Instant::now();
        while !cond(&pool.stats()) {
            assert!(
                start.elapsed() < WAIT,
                "timed out waiting for {what}: {:?}",
                pool.stats()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn the_pool_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<OutboundPool>();
    }

    #[test]
    fn runs_jobs_in_order_on_named_threads() {
        let pool = OutboundPool::new(1, 10).unwrap();
        let (tx, rx) = mpsc::channel();
        for i in 0..5 {
            let tx = tx.clone();
            pool.submit(Box::new(move || {
                let name = std::thread::current().name().unwrap().to_string();
                tx.send((i, name)).unwrap();
            }))
            .unwrap();
        }
        let got: Vec<(i32, String)> = (0..5).map(|_| rx.recv_timeout(WAIT).unwrap()).collect();
        assert_eq!(
            got.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        assert!(got.iter().all(|(_, n)| n == "outbound-0"));
        wait_until(&pool, "five completed", |s| s.completed == 5);
    }

    #[test]
    fn a_full_queue_refuses_without_blocking() {
        let pool = OutboundPool::new(1, 2).unwrap();
        let (started_tx, started) = mpsc::channel();
        let (job, gate) = gated(started_tx);
        pool.submit(job).unwrap();
        started.recv_timeout(WAIT).unwrap();
        // The worker is busy: two fit in the queue, the third is refused.
        pool.submit(Box::new(|| {})).unwrap();
        pool.submit(Box::new(|| {})).unwrap();
        let refused = pool.submit(Box::new(|| {})).unwrap_err();
        assert_eq!(
            refused,
            PoolFull {
                capacity: 2,
                shutting_down: false
            }
        );
        let s = pool.stats();
        assert_eq!((s.running, s.queued, s.rejected), (1, 2, 1));
        drop(gate);
        wait_until(&pool, "all three completed", |s| s.completed == 3);
        assert_eq!(pool.stats().queued, 0);
    }

    #[test]
    fn a_panicking_job_is_counted_and_the_worker_survives() {
        let pool = OutboundPool::new(1, 4).unwrap();
        pool.submit(Box::new(|| panic!("job failure on purpose")))
            .unwrap();
        let (tx, rx) = mpsc::channel();
        pool.submit(Box::new(move || tx.send(()).unwrap())).unwrap();
        rx.recv_timeout(WAIT).unwrap();
        wait_until(&pool, "counters", |s| s.panicked == 1 && s.completed == 1);
        assert_eq!(pool.stats().running, 0);
    }

    #[test]
    fn shutdown_drains_within_the_grace() {
        let pool = OutboundPool::new(2, 10).unwrap();
        let (tx, rx) = mpsc::channel();
        for _ in 0..6 {
            let tx = tx.clone();
            pool.submit(Box::new(move || tx.send(()).unwrap())).unwrap();
        }
        pool.shutdown(WAIT);
        assert_eq!(rx.try_iter().count(), 6);
        let s = pool.stats();
        assert_eq!((s.completed, s.dropped, s.queued), (6, 0, 0));
        let refused = pool.submit(Box::new(|| {})).unwrap_err();
        assert!(refused.shutting_down);
        pool.shutdown(Duration::ZERO);
    }

    #[test]
    fn idle_workers_are_joined_not_reported_as_busy() {
        // A worker leaves its loop (and is no longer counted alive) a
        // moment before its thread finishes; shutdown must wait for that,
        // not call it a busy worker left behind.
        for _ in 0..20 {
            let pool = OutboundPool::new(8, 10).unwrap();
            assert_eq!(pool.shutdown(Duration::from_secs(1)), 0);
        }
    }

    #[test]
    fn shutdown_drops_queued_jobs_after_the_grace() {
        let pool = OutboundPool::new(1, 10).unwrap();
        let (started_tx, started) = mpsc::channel();
        let (job, gate) = gated(started_tx);
        pool.submit(job).unwrap();
        started.recv_timeout(WAIT).unwrap();
        let ran = Arc::new(AtomicU64::new(0));
        for _ in 0..3 {
            let ran = Arc::clone(&ran);
            pool.submit(Box::new(move || {
                ran.fetch_add(1, Ordering::SeqCst);
            }))
            .unwrap();
        }
        // The running job outlives the grace: its worker is left to finish.
        assert_eq!(pool.shutdown(Duration::from_millis(50)), 1);
        let s = pool.stats();
        assert_eq!((s.dropped, s.queued), (3, 0));
        drop(gate);
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    }
}
