//! Streamed responses (Server-Sent Events, and server-push WebSockets):
//! after a worker has written the head of a
//! [`Response::event_stream`](super::Response::event_stream) (or the 101 of
//! a [`Response::websocket`](super::Response::websocket)), the connection
//! moves here. One thread per server forwards each stream's
//! frames as they arrive, so an open stream costs a map entry and a
//! buffer, never a worker.
//!
//! Frames come through a `std::sync::mpsc` receiver, which cannot be
//! waited on together with sockets, so the thread ticks: every [`TICK`] it
//! polls all stream sockets (for a peer that closed, and for room to write
//! where output is waiting), drains every receiver without blocking and
//! writes without blocking. Each stream's unsent output is bounded: a peer
//! that stops reading is dropped once [`MAX_BUFFERED`] bytes are waiting,
//! so it can neither hold memory nor slow the others down.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::conn::Conn;
use super::message::StreamKind;

/// How often frames are forwarded and sockets checked; bounds the latency
/// a stream adds to an event.
const TICK: Duration = Duration::from_millis(50);
/// Unsent bytes a stream may hold before its peer counts as not reading.
pub(crate) const MAX_BUFFERED: usize = 256 * 1024;
/// Sent when nothing else was written for the keep-alive interval, so
/// proxies keep the connection open and a vanished peer is noticed.
const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";
/// A WebSocket's keep-alive: an empty ping (RFC 6455 §5.5.2).
const WS_PING: &[u8] = &[0x89, 0x00];

/// One unmasked WebSocket text message (server to client, RFC 6455 §5.2).
pub(crate) fn ws_text_frame(text: &str) -> Vec<u8> {
    let len = text.len();
    let mut out = Vec::with_capacity(len + 10);
    out.push(0x81);
    if len < 126 {
        out.push(len as u8);
    } else if let Ok(n) = u16::try_from(len) {
        out.push(126);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(text.as_bytes());
    out
}

/// Holds one of the server's `max_streams` places until dropped.
pub(crate) struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Stream {
    conn: Conn,
    rx: Receiver<String>,
    kind: StreamKind,
    /// Plaintext not yet taken by the socket (or rustls).
    out: Vec<u8>,
    last_write: Instant,
    _slot: Slot,
}

/// Why a stream ended (for the debug log).
enum End {
    Finished,
    PeerClosed,
    NotReading,
    Failed(io::Error),
}

impl Stream {
    /// Queues new frames (and a keep-alive when due) and writes what the
    /// socket takes now.
    fn pump(&mut self, now: Instant, keep_alive: Duration) -> Result<(), End> {
        let mut finished = false;
        while self.out.len() <= MAX_BUFFERED {
            match self.rx.try_recv() {
                // A hub's probe for gone subscribers (`telemetry::tail`):
                // nothing to write, and no write for the keep-alive's clock.
                Ok(frame) if frame.is_empty() => {}
                Ok(frame) => {
                    match self.kind {
                        StreamKind::Sse | StreamKind::Deferred => {
                            self.out.extend_from_slice(frame.as_bytes())
                        }
                        StreamKind::WebSocket => self.out.extend(ws_text_frame(&frame)),
                    }
                    self.last_write = now;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    finished = true;
                    break;
                }
            }
        }
        let keep_alive_frame = match self.kind {
            StreamKind::Sse => Some(KEEP_ALIVE),
            StreamKind::WebSocket => Some(WS_PING),
            StreamKind::Deferred => None,
        };
        if let Some(frame) = keep_alive_frame {
            if self.out.is_empty() && now.duration_since(self.last_write) >= keep_alive {
                self.out.extend_from_slice(frame);
                self.last_write = now;
            }
        }
        if !self.out.is_empty() || self.conn.tls_pending() {
            self.conn.write_now(&mut self.out).map_err(End::Failed)?;
        }
        if self.out.len() > MAX_BUFFERED {
            return Err(End::NotReading);
        }
        // What was queued before the sender went away is still written:
        // the stream ends once it has all left (a deferred answer is
        // exactly such a last frame).
        if finished && !self.wants_write() {
            return Err(End::Finished);
        }
        Ok(())
    }

    fn wants_write(&self) -> bool {
        !self.out.is_empty() || self.conn.tls_pending()
    }
}

/// The streams of one server.
pub(crate) struct Streams {
    incoming: Mutex<Incoming>,
    count: Arc<AtomicUsize>,
    max: usize,
}

#[derive(Default)]
struct Incoming {
    streams: Vec<Stream>,
    /// The streams thread has exited; nothing is adopted any more.
    closed: bool,
}

impl Streams {
    pub(crate) fn new(max: usize) -> Streams {
        Streams {
            incoming: Mutex::new(Incoming::default()),
            count: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Incoming> {
        self.incoming.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for one more stream, or `None` at the cap.
    pub(crate) fn reserve(&self) -> Option<Slot> {
        let mut n = self.count.load(Ordering::SeqCst);
        loop {
            if n >= self.max {
                return None;
            }
            match self
                .count
                .compare_exchange(n, n + 1, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return Some(Slot(Arc::clone(&self.count))),
                Err(now) => n = now,
            }
        }
    }

    /// Streams currently open.
    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Takes over a connection whose response head has been written.
    pub(crate) fn adopt(&self, conn: Conn, rx: Receiver<String>, kind: StreamKind, slot: Slot) {
        let stream = Stream {
            conn,
            rx,
            kind,
            out: Vec::new(),
            last_write: Instant::now(),
            _slot: slot,
        };
        let mut incoming = self.lock();
        if !incoming.closed {
            incoming.streams.push(stream);
        }
        // Otherwise dropped here: the server is shutting down.
    }

    /// The streams thread: runs until `stopping` (a stream never finishes
    /// by itself, so graceful shutdown closes streams at once).
    pub(crate) fn run(&self, name: &str, keep_alive: Duration, stopping: &AtomicBool) {
        let mut live: Vec<Stream> = Vec::new();
        let mut fds: Vec<libc::pollfd> = Vec::new();
        while !stopping.load(Ordering::SeqCst) {
            live.append(&mut self.lock().streams);
            let now = Instant::now();
            live.retain_mut(|st| match st.pump(now, keep_alive) {
                Ok(()) => true,
                Err(end) => {
                    log_end(name, st, &end);
                    false
                }
            });
            fds.clear();
            fds.extend(live.iter().map(|st| libc::pollfd {
                fd: st.conn.stream.as_raw_fd(),
                events: libc::POLLIN
                    | libc::POLLRDHUP
                    | if st.wants_write() { libc::POLLOUT } else { 0 },
                revents: 0,
            }));
            // SAFETY: `fds` holds `fds.len()` valid pollfds of sockets
            // owned by `live`, which is not touched during the call. With
            // no fds this is a plain sleep.
            let r = unsafe {
                libc::poll(
                    fds.as_mut_ptr(),
                    fds.len() as libc::nfds_t,
                    TICK.as_millis() as i32,
                )
            };
            if r <= 0 {
                continue;
            }
            let mut i = 0;
            live.retain_mut(|st| {
                let revents = fds[i].revents;
                i += 1;
                let end = if revents & (libc::POLLHUP | libc::POLLERR | libc::POLLRDHUP) != 0 {
                    Some(End::PeerClosed)
                } else if revents & libc::POLLIN != 0 {
                    match st.conn.discard_input() {
                        Ok(false) => None,
                        Ok(true) => Some(End::PeerClosed),
                        Err(e) => Some(End::Failed(e)),
                    }
                } else {
                    None
                };
                match end {
                    None => true,
                    Some(end) => {
                        log_end(name, st, &end);
                        false
                    }
                }
            });
        }
        let leftover = {
            let mut incoming = self.lock();
            incoming.closed = true;
            std::mem::take(&mut incoming.streams)
        };
        if !live.is_empty() || !leftover.is_empty() {
            log::debug!(
                "{name}: closing {} event stream(s) for shutdown",
                live.len() + leftover.len()
            );
        }
        // Dropping a `Conn` sends close_notify on TLS (best effort).
        drop(live);
        drop(leftover);
    }
}

fn log_end(name: &str, st: &Stream, end: &End) {
    let peer = st.conn.peer;
    match end {
        End::Finished => log::debug!("{name}: event stream to {peer} finished"),
        End::PeerClosed => log::debug!("{name}: event stream peer {peer} went away"),
        End::NotReading => log::info!(
            "{name}: dropping event stream to {peer}: more than {MAX_BUFFERED} bytes unread"
        ),
        End::Failed(e) => log::debug!("{name}: event stream to {peer} failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::ws_text_frame;

    #[test]
    fn websocket_text_frames_carry_their_length_in_each_form() {
        assert_eq!(ws_text_frame("hi"), vec![0x81, 2, b'h', b'i']);
        let f = ws_text_frame(&"a".repeat(125));
        assert_eq!((f[1], f.len()), (125, 127));
        let f = ws_text_frame(&"a".repeat(126));
        assert_eq!((&f[..4], f.len()), (&[0x81, 126, 0, 126][..], 130));
        let f = ws_text_frame(&"a".repeat(65_536));
        assert_eq!(&f[..10], &[0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(f.len(), 65_546);
    }
}
