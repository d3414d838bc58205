//! The epoll poller: parks idle and partially received connections, hands
//! readable ones to the worker pool, and enforces handshake, idle, request
//! and linger deadlines. Events carry a connection id rather than an fd, so
//! a recycled fd number can never be mistaken for an older connection.

use std::collections::HashMap;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::conn::{Conn, DeadlineKind};
use super::message::Response;
use super::pool::{InFlight, Pool};
use super::server::{encode_response, Limits};

/// How often deadlines are checked; bounds how late a timeout can fire.
const SCAN_INTERVAL: Duration = Duration::from_millis(100);

pub(crate) struct Poller {
    epfd: i32,
    conns: Mutex<HashMap<u64, Conn>>,
}

impl Poller {
    pub(crate) fn new() -> io::Result<Poller> {
        // SAFETY: plain syscall with a valid flag.
        let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epfd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Poller {
            epfd,
            conns: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Conn>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Parks `conn` until it is readable (one-shot). The epoll call happens
    /// under the map lock: otherwise the deadline scan could close the
    /// connection, and its fd number be reused, before we arm it.
    pub(crate) fn park(&self, mut conn: Conn) {
        let fd = conn.stream.as_raw_fd();
        let op = if conn.registered {
            libc::EPOLL_CTL_MOD
        } else {
            libc::EPOLL_CTL_ADD
        };
        conn.registered = true;
        let id = conn.id;
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLONESHOT) as u32,
            u64: id,
        };
        let mut map = self.lock();
        // SAFETY: `fd` is open (owned by `conn`, which we hold) and `ev`
        // is a valid epoll_event.
        let r = unsafe { libc::epoll_ctl(self.epfd, op, fd, &mut ev) };
        if r < 0 {
            let err = io::Error::last_os_error();
            drop(map);
            log::warn!("cannot watch connection from {}: {err}", conn.peer);
            return;
        }
        map.insert(id, conn);
    }

    /// Runs until `stopped`; while `stopping`, readable connections are no
    /// longer dispatched (graceful shutdown lets only in-flight work finish).
    pub(crate) fn run(
        &self,
        name: &str,
        limits: &Limits,
        pool: &Pool,
        in_flight: &Arc<AtomicUsize>,
        stopping: &AtomicBool,
        stopped: &AtomicBool,
    ) {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
        let mut last_scan = Instant::now();
        while !stopped.load(Ordering::SeqCst) {
            // SAFETY: `events` has room for `events.len()` entries.
            let n = unsafe {
                libc::epoll_wait(
                    self.epfd,
                    events.as_mut_ptr(),
                    events.len() as i32,
                    SCAN_INTERVAL.as_millis() as i32,
                )
            };
            if n < 0 {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    log::error!("{name}: epoll_wait failed: {err}");
                    std::thread::sleep(SCAN_INTERVAL);
                }
                continue;
            }
            if n > 0 && !stopping.load(Ordering::SeqCst) {
                let mut ready = Vec::with_capacity(n as usize);
                {
                    let mut map = self.lock();
                    for ev in &events[..n as usize] {
                        let id = ev.u64;
                        if let Some(conn) = map.remove(&id) {
                            // Counted before it leaves the map, so shutdown
                            // never sees it in neither place.
                            ready.push((conn, InFlight::new(in_flight)));
                        }
                    }
                }
                for (conn, guard) in ready {
                    pool.push(conn, guard);
                }
            }
            if last_scan.elapsed() >= SCAN_INTERVAL {
                last_scan = Instant::now();
                self.expire(name, limits, last_scan);
            }
        }
        let all: Vec<Conn> = self.lock().drain().map(|(_, c)| c).collect();
        drop(all);
    }

    /// Closes parked connections whose deadline has passed. O(n) per scan,
    /// cheap next to 10,000 idle TLS sessions' memory.
    fn expire(&self, name: &str, limits: &Limits, now: Instant) {
        let expired: Vec<(Conn, DeadlineKind)> = {
            let mut map = self.lock();
            let ids: Vec<(u64, DeadlineKind)> = map
                .iter()
                .filter_map(|(id, c)| {
                    let (at, kind) = c.deadline(limits);
                    (at <= now).then_some((*id, kind))
                })
                .collect();
            ids.into_iter()
                .filter_map(|(id, kind)| map.remove(&id).map(|c| (c, kind)))
                .collect()
        };
        for (mut conn, kind) in expired {
            match kind {
                DeadlineKind::Handshake => {
                    log::debug!("{name}: TLS handshake from {} timed out", conn.peer)
                }
                DeadlineKind::Idle => {
                    log::trace!("{name}: idle connection from {} closed", conn.peer)
                }
                DeadlineKind::Request => {
                    log::debug!("{name}: request from {} timed out", conn.peer);
                    let resp = Response::layer_error(
                        408,
                        "request_timeout",
                        "request not received in time",
                    );
                    conn.send_now(&encode_response(&resp, false, true, false));
                }
                DeadlineKind::Linger => {}
            }
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        // SAFETY: we own `epfd` and close it exactly once.
        unsafe { libc::close(self.epfd) };
    }
}
