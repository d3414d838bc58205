//! The hand-off queue between the poller and the worker threads. A
//! connection in the queue (or in a worker) counts as "in flight", which is
//! what graceful shutdown waits on.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::conn::Conn;

/// Marks one connection as dispatched to the workers until dropped; a guard
/// so the count is right even if a worker unwinds.
pub(crate) struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    pub(crate) fn new(counter: &Arc<AtomicUsize>) -> InFlight {
        counter.fetch_add(1, Ordering::SeqCst);
        InFlight(Arc::clone(counter))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Readable connections waiting for a worker.
pub(crate) struct Pool {
    queue: Mutex<VecDeque<(Conn, InFlight)>>,
    ready: Condvar,
    stopped: AtomicBool,
}

impl Pool {
    pub(crate) fn new() -> Pool {
        Pool {
            queue: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            stopped: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<(Conn, InFlight)>> {
        // A poisoned queue still holds valid connections; keep serving.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn push(&self, conn: Conn, in_flight: InFlight) {
        self.lock().push_back((conn, in_flight));
        self.ready.notify_one();
    }

    /// Next connection to serve, or `None` once the pool is stopped.
    pub(crate) fn pop(&self) -> Option<(Conn, InFlight)> {
        let mut queue = self.lock();
        loop {
            if self.stopped.load(Ordering::SeqCst) {
                return None;
            }
            if let Some(item) = queue.pop_front() {
                return Some(item);
            }
            // The timeout is only a backstop; `stop` notifies all waiters.
            queue = self
                .ready
                .wait_timeout(queue, Duration::from_millis(500))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Wakes every worker so it exits, and drops (closes) queued connections.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        let drained: Vec<_> = self.lock().drain(..).collect();
        self.ready.notify_all();
        drop(drained);
    }
}
