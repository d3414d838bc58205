//! One accepted connection and its nonblocking I/O: reading whatever has
//! arrived (through rustls when the listener is TLS), writing a response
//! with a bounded wait, and knowing which deadline currently applies. A
//! `Conn` is owned by exactly one place at a time (the poller's map or a
//! worker), so none of this needs locking.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::ServerConnection;

use super::server::Limits;

/// Open connections per peer address, for `max_connections_per_ip`.
pub(crate) type PerIp = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// Counts a connection as active (in all, and for its peer address) for as
/// long as it exists; decrementing in `Drop` means no early return or panic
/// can leak a slot of `max_connections` or `max_connections_per_ip`.
pub(crate) struct ActiveGuard {
    total: Arc<AtomicUsize>,
    per_ip: Option<(PerIp, IpAddr)>,
}

impl ActiveGuard {
    pub(crate) fn new(counter: &Arc<AtomicUsize>) -> ActiveGuard {
        counter.fetch_add(1, Ordering::SeqCst);
        ActiveGuard {
            total: Arc::clone(counter),
            per_ip: None,
        }
    }

    /// Also takes a slot of `ip`'s, unless it already holds `limit`
    /// (0: no limit); `None` when it does.
    pub(crate) fn with_ip(
        mut self,
        per_ip: &PerIp,
        ip: IpAddr,
        limit: usize,
    ) -> Option<ActiveGuard> {
        if limit == 0 {
            return Some(self);
        }
        let mut map = per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        drop(map);
        self.per_ip = Some((Arc::clone(per_ip), ip));
        Some(self)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.total.fetch_sub(1, Ordering::SeqCst);
        if let Some((per_ip, ip)) = &self.per_ip {
            let mut map = per_ip.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = map.get_mut(ip) {
                *n -= 1;
                if *n == 0 {
                    map.remove(ip);
                }
            }
        }
    }
}

/// Which deadline applies to a parked connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeadlineKind {
    /// TLS handshake not finished (`handshake_timeout` after accept).
    Handshake,
    /// Waiting for the first byte of the next request (`idle_timeout`).
    Idle,
    /// A request has started but not fully arrived (`request_timeout`).
    Request,
    /// We answered with an error and are discarding input before closing,
    /// so the peer reads our response instead of a reset.
    Linger,
}

/// How long to keep discarding input after an error response, and how
/// much, before closing regardless.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_MAX_BYTES: usize = 1 << 20;

pub(crate) struct Conn {
    pub id: u64,
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub tls: Option<Box<ServerConnection>>,
    /// Plaintext received but not yet consumed by a complete request.
    pub buf: Vec<u8>,
    pub accepted: Instant,
    /// Since when the connection has had no partial request.
    pub idle_since: Instant,
    /// When the first byte of the current (incomplete) request arrived.
    pub request_started: Option<Instant>,
    /// `100 Continue` already sent for the current request.
    pub sent_continue: bool,
    /// The fd is in the poller's epoll set (so re-arming uses MOD).
    pub registered: bool,
    /// Set once we are only draining input before closing.
    linger_until: Option<Instant>,
    lingered_bytes: usize,
    _active: ActiveGuard,
}

impl Conn {
    pub(crate) fn new(
        id: u64,
        stream: TcpStream,
        peer: SocketAddr,
        tls: Option<ServerConnection>,
        active: ActiveGuard,
    ) -> Conn {
        let now = Instant::now();
        Conn {
            id,
            stream,
            peer,
            tls: tls.map(Box::new),
            buf: Vec::new(),
            accepted: now,
            idle_since: now,
            request_started: None,
            sent_continue: false,
            registered: false,
            linger_until: None,
            lingered_bytes: 0,
            _active: active,
        }
    }

    pub(crate) fn is_handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.is_handshaking())
    }

    pub(crate) fn is_lingering(&self) -> bool {
        self.linger_until.is_some()
    }

    /// The deadline the poller enforces while this connection is parked.
    pub(crate) fn deadline(&self, limits: &Limits) -> (Instant, DeadlineKind) {
        if let Some(until) = self.linger_until {
            (until, DeadlineKind::Linger)
        } else if self.is_handshaking() {
            (
                self.accepted + limits.handshake_timeout,
                DeadlineKind::Handshake,
            )
        } else if let Some(started) = self.request_started {
            (started + limits.request_timeout, DeadlineKind::Request)
        } else {
            (self.idle_since + limits.idle_timeout, DeadlineKind::Idle)
        }
    }

    /// Reads everything available without blocking, appending plaintext to
    /// `buf` until it holds `cap` bytes. Returns whether the peer has closed
    /// its side. TLS handshake replies are flushed as they are produced; a
    /// TLS protocol error sends the alert and is returned as an error, after
    /// which the connection must be dropped.
    pub(crate) fn read_available(
        &mut self,
        cap: usize,
        write_timeout: Duration,
    ) -> io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        let Some(tls) = self.tls.as_deref_mut() else {
            loop {
                if self.buf.len() >= cap {
                    return Ok(false);
                }
                match self.stream.read(&mut chunk) {
                    Ok(0) => return Ok(true),
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        };
        loop {
            if self.buf.len() >= cap {
                return Ok(false);
            }
            let mut eof = match tls.read_tls(&mut self.stream) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if let Err(e) = tls.process_new_packets() {
                // rustls has queued the matching alert; tell the peer why
                // before closing, but never wait long for it.
                let deadline = Instant::now() + Duration::from_millis(100);
                let _ = flush_tls(tls, &self.stream, deadline);
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            loop {
                match tls.reader().read(&mut chunk) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        eof = true;
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            flush_tls(tls, &self.stream, Instant::now() + write_timeout)?;
            if eof {
                return Ok(true);
            }
        }
    }

    /// Writes `bytes` completely, waiting for the socket to drain at most
    /// until `timeout` from now.
    pub(crate) fn send(&mut self, bytes: &[u8], timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        match self.tls.as_deref_mut() {
            None => write_all_until(&self.stream, bytes, deadline),
            Some(tls) => {
                let mut off = 0;
                while off < bytes.len() {
                    // rustls buffers a bounded amount of plaintext, so write
                    // in pieces and push ciphertext out in between.
                    let n = tls.writer().write(&bytes[off..])?;
                    off += n;
                    flush_tls(tls, &self.stream, deadline)?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::WriteZero,
                            "TLS connection accepts no more data",
                        ));
                    }
                }
                flush_tls(tls, &self.stream, deadline)
            }
        }
    }

    /// One nonblocking attempt to write `bytes`; used by the poller, which
    /// must never wait on a peer.
    pub(crate) fn send_now(&mut self, bytes: &[u8]) {
        match self.tls.as_deref_mut() {
            None => {
                let _ = (&self.stream).write(bytes);
            }
            Some(tls) => {
                if tls.writer().write_all(bytes).is_ok() {
                    let _ = flush_tls(tls, &self.stream, Instant::now());
                }
            }
        }
    }

    /// For a streamed response: moves as much of `out` (plaintext) to the
    /// peer as the socket takes now, without waiting; what is left stays
    /// in `out`. Used by the streams thread, which must never block.
    pub(crate) fn write_now(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        let mut stream = &self.stream;
        let Some(tls) = self.tls.as_deref_mut() else {
            while !out.is_empty() {
                match stream.write(out) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        out.drain(..n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            return Ok(());
        };
        loop {
            // rustls takes plaintext up to its buffer limit; ciphertext
            // then goes out as far as the socket allows.
            let taken = if out.is_empty() {
                0
            } else {
                let n = tls.writer().write(out)?;
                out.drain(..n);
                n
            };
            while tls.wants_write() {
                match tls.write_tls(&mut stream) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if out.is_empty() || taken == 0 {
                return Ok(());
            }
        }
    }

    /// Whether TLS records are waiting for the socket to take them.
    pub(crate) fn tls_pending(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// For a streamed response: reads and discards whatever the peer sent,
    /// without waiting. Returns whether the peer has closed its side.
    pub(crate) fn discard_input(&mut self) -> io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        let Some(tls) = self.tls.as_deref_mut() else {
            loop {
                match self.stream.read(&mut chunk) {
                    Ok(0) => return Ok(true),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        };
        loop {
            match tls.read_tls(&mut self.stream) {
                Ok(0) => return Ok(true),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            tls.process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            loop {
                match tls.reader().read(&mut chunk) {
                    Ok(0) => return Ok(true),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(true),
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// After an error response: stop sending (with close_notify on TLS) and
    /// keep discarding input for a while. Closing with unread input would
    /// make the kernel send a reset, which can destroy our response before
    /// the peer reads it.
    pub(crate) fn start_linger(&mut self) {
        self.close_notify();
        let _ = self.stream.shutdown(Shutdown::Write);
        self.buf = Vec::new();
        self.linger_until = Some(Instant::now() + LINGER_TIME);
    }

    /// Discards what is readable. Returns `true` while lingering should go on.
    pub(crate) fn linger_drain(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return false,
                Ok(n) => {
                    self.lingered_bytes += n;
                    if self.lingered_bytes > LINGER_MAX_BYTES {
                        return false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }

    fn close_notify(&mut self) {
        if let Some(tls) = self.tls.as_deref_mut() {
            tls.send_close_notify();
            let _ = flush_tls(tls, &self.stream, Instant::now());
            // Sent (or abandoned); make sure Drop does not try again.
            self.tls = None;
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // A TLS peer that sees close_notify knows the close was deliberate
        // (e.g. idle timeout) rather than a truncation. Best effort only.
        if self.linger_until.is_none() {
            self.close_notify();
        }
    }
}

/// Pushes rustls's pending ciphertext to the socket, waiting for
/// writability until `deadline`.
fn flush_tls(tls: &mut ServerConnection, stream: &TcpStream, deadline: Instant) -> io::Result<()> {
    let mut stream = stream;
    while tls.wants_write() {
        match tls.write_tls(&mut stream) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_writable(stream, deadline)?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn write_all_until(stream: &TcpStream, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
    let mut stream = stream;
    while !bytes.is_empty() {
        match stream.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_writable(stream, deadline)?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Waits with `poll(POLLOUT)` until the socket can take more data or the
/// deadline passes (a peer that stops reading must not hold a worker).
fn wait_writable(stream: &TcpStream, deadline: Instant) -> io::Result<()> {
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out"));
        }
        let mut pfd = libc::pollfd {
            fd: stream.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        let ms = remaining.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: `pfd` is a valid pollfd for the duration of the call and
        // the count is 1.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if r > 0 {
            // Writable, or an error/hangup the next write will report.
            return Ok(());
        }
    }
}
