//! The PostgreSQL backend: everything in a database the operator runs,
//! chosen by a `postgres://` database URL.
//!
//! - Connections: a small pool of blocking `postgres` clients (the crate
//!   runs each connection on a hidden runtime thread of its own; icpd's
//!   server stays synchronous). A connection that fails mid-use is dropped,
//!   not returned.
//! - TLS: `sslmode=disable|require|verify-full` as libpq reads them, done by
//!   rustls. `verify-full` checks the chain against `sslrootcert` (a PEM
//!   file) and the host name; `require` encrypts without checking who
//!   answers (libpq's meaning; icpd logs that it does not verify).
//! - Writes are serialised across every node sharing the database by a
//!   transaction-scoped advisory lock taken first in each write
//!   transaction: the same one-writer-at-a-time semantics as SQLite's
//!   BEGIN IMMEDIATE, so the store's queries hold on both backends. Reads
//!   run in REPEATABLE READ READ ONLY transactions (one snapshot each).
//! - Group commit: the lock is held through `COMMIT`'s WAL flush, so one
//!   write transaction at a time would wait for one flush each. Instead a
//!   node's writers that arrive while its write transaction is open join
//!   it as steps, one after another on its connection, each under a
//!   savepoint (a step that fails or panics undoes only its own work);
//!   one `COMMIT`, one flush, makes the batch durable, and no writer is
//!   answered before it. Steps run in the order they joined, each seeing
//!   the ones before it: the same serial order as one transaction each.
//! - Migrations: `store::postgres_migrations`, numbered as SQLite's; the
//!   applied count is in `icpd_schema`, and applying takes an advisory lock
//!   so nodes starting together migrate once.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use super::db::{self, PgConn, Queries};
use super::postgres_migrations::MIGRATIONS;
use crate::error::{Error, Result};

/// How long a secrets generation read from PostgreSQL stays current when
/// this process commits nothing meanwhile: a secret changed through
/// another node is seen within this long.
pub(super) const WATCH_EVERY: Duration = Duration::from_millis(1);

/// Connections per node.
const POOL_SIZE: usize = 8;

/// How long a request waits for a free connection, and a new connection
/// for the server, before the store answers that the database is
/// unavailable.
const WAIT: Duration = Duration::from_secs(5);

/// After a failed connection attempt, the next one waits this long.
const RECONNECT_AFTER: Duration = Duration::from_millis(500);

/// The advisory lock every write transaction takes (see the module doc).
const WRITE_LOCK: i64 = 0x1c9d_0001;
/// How a write transaction begins: with the write lock, in the same message.
static WRITE_BEGIN: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK}); SAVEPOINT {}",
        db::STEP_SAVEPOINT
    )
});
/// Most writers one write transaction carries: each step is a
/// subtransaction, and PostgreSQL tracks 64 per transaction before every
/// snapshot taken meanwhile gets slower.
const BATCH_MAX: usize = 32;
/// How a step after the first begins (the first one's savepoint is set by
/// [`WRITE_BEGIN`]).
const STEP_BEGIN: &str = "SAVEPOINT icpd_step";
/// The advisory lock migrations take.
const MIGRATION_LOCK: i64 = 0x1c9d_0002;

/// How the connection is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Require,
    VerifyFull,
}

/// A `postgres://` URL, parsed and checked.
#[derive(Clone)]
pub struct DatabaseUrl {
    config: postgres::Config,
    pub ssl_mode: SslMode,
    pub root_cert: Option<PathBuf>,
    display: String,
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

impl DatabaseUrl {
    /// Parses `postgres://user:password@host:port/db?sslmode=...&sslrootcert=...`.
    /// The error says what is wrong without repeating the password.
    pub fn parse(url: &str) -> Result<DatabaseUrl> {
        let bad = |why: &str| Error::Config(format!("database_url {}: {why}", redact(url)));
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(bad(
                "must start with postgres:// (leave it unset for the embedded SQLite database)",
            ));
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut ssl_mode = SslMode::Disable;
        let mut root_cert = None;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "sslmode" => {
                    ssl_mode = match v {
                        "disable" => SslMode::Disable,
                        "require" => SslMode::Require,
                        "verify-full" => SslMode::VerifyFull,
                        other => {
                            return Err(bad(&format!(
                            "sslmode={other} is not supported; use disable, require or verify-full"
                        )))
                        }
                    }
                }
                "sslrootcert" => root_cert = Some(PathBuf::from(v)),
                _ => kept.push(pair),
            }
        }
        if ssl_mode == SslMode::VerifyFull && root_cert.is_none() {
            return Err(bad(
                "sslmode=verify-full needs sslrootcert=/path/to/ca.pem (the CA that signed the server's certificate)",
            ));
        }
        let rebuilt = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let mut config: postgres::Config = rebuilt
            .parse()
            .map_err(|e: postgres::Error| bad(&e.to_string()))?;
        if config.get_hosts().is_empty() {
            return Err(bad("names no host"));
        }
        if config.get_application_name().is_none() {
            config.application_name("icpd");
        }
        config.connect_timeout(WAIT);
        // A database cut off without a reset (a partition) fails a request
        // after this long instead of the kernel's many minutes.
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(WAIT);
        }
        config.ssl_mode(match ssl_mode {
            SslMode::Disable => postgres::config::SslMode::Disable,
            _ => postgres::config::SslMode::Require,
        });
        Ok(DatabaseUrl {
            config,
            ssl_mode,
            root_cert,
            display: redact(url),
        })
    }

    /// The URL without its password, for logs and messages.
    pub fn display(&self) -> &str {
        &self.display
    }
}

/// `url` with any password replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}{tail}")
            } else {
                format!("{scheme}://{user}@{host}{tail}")
            }
        }
        None => url.to_owned(),
    }
}

#[derive(Clone)]
enum Tls {
    None,
    Rustls(tokio_postgres_rustls::MakeRustlsConnect),
}

fn tls_for(url: &DatabaseUrl) -> Result<Tls> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS set-up: {e}")))?;
    let config = match url.ssl_mode {
        SslMode::Disable => return Ok(Tls::None),
        SslMode::VerifyFull => {
            let path = url.root_cert.as_ref().expect("checked by parse");
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| {
                    Error::Config(format!(
                        "sslrootcert {}: cannot read a PEM certificate ({e})",
                        path.display()
                    ))
                })?;
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| Error::Config(format!("sslrootcert {}: {e}", path.display())))?;
            }
            if roots.is_empty() {
                return Err(Error::Config(format!(
                    "sslrootcert {} holds no certificate",
                    path.display()
                )));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        SslMode::Require => {
            log::warn!(
                "database_url has sslmode=require: the connection is encrypted but the server's certificate is not checked; use sslmode=verify-full with sslrootcert to check it"
            );
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
                .with_no_client_auth()
        }
    };
    Ok(Tls::Rustls(tokio_postgres_rustls::MakeRustlsConnect::new(
        config,
    )))
}

/// libpq's `sslmode=require`: any certificate, signatures still checked
/// for the handshake itself.
#[derive(Debug)]
struct Unverified(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The pool: idle connections, and how many exist.
struct Pool {
    url: DatabaseUrl,
    tls: Tls,
    state: Mutex<PoolState>,
    freed: Condvar,
}

struct PoolState {
    /// After a failed connect, new connections are not tried again before
    /// this: requests fail at once (503) instead of each waiting for the
    /// connect timeout while the database is down.
    down_until: Option<Instant>,
    idle: Vec<PgConn>,
    open: usize,
}

/// A connection taken from the pool; goes back when dropped, unless it
/// broke.
struct Pooled<'p> {
    pool: &'p Pool,
    conn: Option<RefCell<PgConn>>,
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        let conn = self.conn.take().map(RefCell::into_inner);
        let mut state = self.pool.state.lock().unwrap_or_else(|p| p.into_inner());
        match conn {
            Some(c) if !c.broken && !c.client.is_closed() => state.idle.push(c),
            _ => state.open -= 1,
        }
        drop(state);
        self.pool.freed.notify_one();
    }
}

impl Pool {
    fn connect_one(&self) -> Result<PgConn> {
        let client = match &self.tls {
            Tls::None => self.url.config.connect(postgres::NoTls),
            Tls::Rustls(tls) => self.url.config.connect(tls.clone()),
        }
        .map_err(|e| {
            Error::Unavailable(format!(
                "cannot connect to {}: {}",
                self.url.display(),
                db::Error::from(e)
            ))
        })?;
        Ok(PgConn::new(client))
    }

    fn get(&self) -> Result<Pooled<'_>> {
        let deadline = Instant::now() + WAIT;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(conn) = state.idle.pop() {
                return Ok(Pooled {
                    pool: self,
                    conn: Some(RefCell::new(conn)),
                });
            }
            if state.open < POOL_SIZE {
                if state.down_until.is_some_and(|t| Instant::now() < t) {
                    return Err(Error::Unavailable(format!(
                        "{} did not answer the last connection attempt",
                        self.url.display()
                    )));
                }
                state.open += 1;
                drop(state);
                return match self.connect_one() {
                    Ok(conn) => {
                        self.state
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .down_until = None;
                        Ok(Pooled {
                            pool: self,
                            conn: Some(RefCell::new(conn)),
                        })
                    }
                    Err(e) => {
                        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                        state.open -= 1;
                        state.down_until = Some(Instant::now() + RECONNECT_AFTER);
                        drop(state);
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Unavailable(format!(
                    "no free connection to {} within {} s",
                    self.url.display(),
                    WAIT.as_secs()
                )));
            }
            state = self
                .freed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// How writes share transactions (group commit), counted since start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteSharing {
    /// Write transactions committed or tried.
    pub commits: u64,
    /// Writes run in them.
    pub writes: u64,
    /// Writers that joined the open transaction and wait for their turn.
    pub waiting: usize,
}

/// A node's open write transaction and the writers joining it (group
/// commit; see the module doc).
#[derive(Default)]
struct Train {
    /// Write transactions committed (or tried), and the writes they
    /// carried: `/metrics` shows how well commits are shared.
    commits: std::sync::atomic::AtomicU64,
    writes: std::sync::atomic::AtomicU64,
    state: Mutex<TrainState>,
    /// Signalled when the connection is handed back, a batch closes, or
    /// its outcome is known.
    moved: Condvar,
}

#[derive(Default)]
struct TrainState {
    /// The batch taking writers, if one is open.
    open: Option<Arc<Batch>>,
    /// Its connection, while no step runs on it.
    conn: Option<PgConn>,
    /// Writers that joined it and have not had their step yet. The batch
    /// closes only when this is 0.
    queued: usize,
    /// Writers that joined it, its own first.
    joined: usize,
}

/// One write transaction shared by several writers.
#[derive(Default)]
struct Batch {
    /// Set once: committed, or why not (unavailable?, message).
    outcome: std::sync::OnceLock<std::result::Result<(), (bool, String)>>,
}

impl Batch {
    fn error(&self) -> Error {
        match self.outcome.get() {
            Some(Err((true, m))) => Error::Unavailable(m.clone()),
            Some(Err((false, m))) => Error::Database(m.clone()),
            _ => Error::Internal("a write batch has no failure to report".into()),
        }
    }
}

fn failure(e: &Error) -> (bool, String) {
    (matches!(e, Error::Unavailable(_)), e.to_string())
}

impl Train {
    fn lock(&self) -> std::sync::MutexGuard<'_, TrainState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait<'a>(
        &self,
        st: std::sync::MutexGuard<'a, TrainState>,
    ) -> std::sync::MutexGuard<'a, TrainState> {
        self.moved.wait(st).unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes `batch`'s outcome to the writers waiting for it.
    fn settle(&self, batch: &Batch, outcome: std::result::Result<(), (bool, String)>) {
        let st = self.lock();
        let _ = batch.outcome.set(outcome);
        drop(st);
        self.moved.notify_all();
    }

    /// Runs one writer's step on the batch's connection, on the writer's
    /// own thread; the connection goes back to the batch afterwards, even
    /// when `f` panics.
    fn step<T>(
        &self,
        conn: PgConn,
        begin: &str,
        f: impl FnOnce(&db::Transaction) -> Result<T>,
    ) -> Result<T> {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let boarded = Boarded {
            train: self,
            conn: Some(RefCell::new(conn)),
        };
        let cell = boarded.conn.as_ref().expect("held until drop");
        let tx = db::Transaction::postgres_step(cell, begin)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }
}

/// A batch's connection while a step runs on it.
struct Boarded<'t> {
    train: &'t Train,
    conn: Option<RefCell<PgConn>>,
}

impl Drop for Boarded<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.train.lock().conn = Some(conn.into_inner());
            self.train.moved.notify_all();
        }
    }
}

pub struct Postgres {
    pool: Arc<Pool>,
    train: Train,
    /// Set when a committed write recorded changes; the notifier thread
    /// sends one NOTIFY for all that are set meanwhile.
    notify: Arc<(Mutex<bool>, Condvar)>,
    notifier: std::sync::OnceLock<()>,
}

impl Postgres {
    /// Connects without migrating (`icpd db copy` checks the database is
    /// empty first).
    pub(super) fn connect_unmigrated(url: &DatabaseUrl) -> Result<Postgres> {
        Ok(Postgres {
            train: Train::default(),
            notify: Arc::default(),
            notifier: std::sync::OnceLock::new(),
            pool: Arc::new(Pool {
                tls: tls_for(url)?,
                url: url.clone(),
                state: Mutex::new(PoolState {
                    down_until: None,
                    idle: Vec::new(),
                    open: 0,
                }),
                freed: Condvar::new(),
            }),
        })
    }

    /// Connects and applies pending migrations.
    pub fn connect(url: &DatabaseUrl) -> Result<Postgres> {
        let pg = Postgres::connect_unmigrated(url)?;
        pg.migrate(MIGRATIONS.len())?;
        Ok(pg)
    }

    /// Wakes the nodes listening for changes: a thread sends `NOTIFY`
    /// outside any write transaction, at most every 10 ms, once for all
    /// the commits since the last one.
    pub fn wake_listeners(&self) {
        let (flag, wake) = &*self.notify;
        *flag.lock().unwrap_or_else(|p| p.into_inner()) = true;
        wake.notify_one();
        self.notifier.get_or_init(|| {
            let (notify, pool) = (self.notify.clone(), self.pool.clone());
            let spawned = std::thread::Builder::new()
                .name("pg-notify".into())
                .spawn(move || notifier(&notify, &pool));
            if let Err(e) = spawned {
                log::warn!("cannot start the change notifier (nodes poll instead): {e}");
            }
        });
    }

    /// A listener for `NOTIFY`s on `channel`, on a connection of its own
    /// (made at the first wait, and again after it breaks).
    pub fn listener(&self, channel: &str) -> Listener {
        Listener {
            url: self.pool.url.clone(),
            tls: self.pool.tls.clone(),
            channel: channel.to_owned(),
            client: None,
        }
    }

    /// How writes share transactions so far.
    pub fn write_sharing(&self) -> WriteSharing {
        use std::sync::atomic::Ordering::Relaxed;
        WriteSharing {
            commits: self.train.commits.load(Relaxed),
            writes: self.train.writes.load(Relaxed),
            waiting: self.train.lock().queued,
        }
    }

    pub fn display_url(&self) -> String {
        self.pool.url.display().to_owned()
    }

    /// Runs `f` in a write transaction, after every other node's and
    /// thread's write (the write lock); its work is kept if it returns
    /// `Ok`, and this returns once that is committed. Writers arriving
    /// while one is open join it (group commit; see the module doc).
    pub fn write<T>(&self, f: impl FnOnce(&db::Transaction) -> Result<T>) -> Result<T> {
        let train = &self.train;
        let mut st = train.lock();
        loop {
            match &st.open {
                Some(batch) if st.joined < BATCH_MAX => {
                    let batch = batch.clone();
                    st.joined += 1;
                    st.queued += 1;
                    return self.ride(st, &batch, f);
                }
                // Full: wait for the next one.
                Some(_) => st = train.wait(st),
                None => break,
            }
        }
        let batch = Arc::new(Batch::default());
        st.open = Some(batch.clone());
        st.joined = 1;
        drop(st);
        self.drive(&batch, f)
    }

    /// Opens `batch`, runs the first step, lets the writers that joined
    /// meanwhile run theirs, and commits.
    fn drive<T>(&self, batch: &Batch, f: impl FnOnce(&db::Transaction) -> Result<T>) -> Result<T> {
        let train = &self.train;
        let opened = self.pool.get().and_then(|mut pooled| {
            let mut conn = pooled.conn.take().expect("held until drop").into_inner();
            // BEGIN, the lock and the first savepoint in one round trip.
            match conn.client.batch_execute(&WRITE_BEGIN) {
                Ok(()) => Ok((pooled, conn)),
                Err(e) => {
                    conn.broken |= e.is_closed();
                    pooled.conn = Some(RefCell::new(conn));
                    Err(Error::from(e))
                }
            }
        });
        let (mut pooled, conn) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                // The writers queued on it fail too; the batch closes
                // when they have seen that.
                train.settle(batch, Err(failure(&e)));
                let mut st = train.lock();
                while st.queued > 0 {
                    st = train.wait(st);
                }
                st.open = None;
                drop(st);
                train.moved.notify_all();
                return Err(e);
            }
        };
        let value =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| train.step(conn, "", f)));
        let mut st = train.lock();
        while st.queued > 0 || st.conn.is_none() {
            st = train.wait(st);
        }
        let mut conn = st.conn.take().expect("checked above");
        st.open = None;
        drop(st);
        // Writers waiting for room open the next batch meanwhile (its
        // BEGIN waits for this one's lock inside PostgreSQL).
        train.moved.notify_all();
        train
            .commits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let committed = conn.client.batch_execute("COMMIT").map_err(|e| {
            conn.broken |= e.is_closed();
            Error::from(e)
        });
        pooled.conn = Some(RefCell::new(conn));
        drop(pooled);
        train.settle(batch, committed.as_ref().map(|_| ()).map_err(failure));
        match value {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(value) => {
                let value = value?;
                committed?;
                Ok(value)
            }
        }
    }

    /// Waits for the connection of `batch` (which `st` has joined), runs
    /// `f` as a step, and waits for the commit.
    fn ride<T>(
        &self,
        mut st: std::sync::MutexGuard<'_, TrainState>,
        batch: &Batch,
        f: impl FnOnce(&db::Transaction) -> Result<T>,
    ) -> Result<T> {
        let train = &self.train;
        let conn = loop {
            if let Some(conn) = st.conn.take() {
                break Some(conn);
            }
            if batch.outcome.get().is_some() {
                break None; // it could not be opened
            }
            st = train.wait(st);
        };
        st.queued -= 1;
        drop(st);
        train.moved.notify_all();
        let Some(conn) = conn else {
            return Err(batch.error());
        };
        // An error undid this step only; the caller need not wait.
        let value = train.step(conn, STEP_BEGIN, f)?;
        let mut st = train.lock();
        while batch.outcome.get().is_none() {
            st = train.wait(st);
        }
        drop(st);
        match batch.outcome.get() {
            Some(Ok(())) => Ok(value),
            _ => Err(batch.error()),
        }
    }

    /// Runs `f` in a transaction opened by `begin` (`BEGIN ...`, with any
    /// `SET LOCAL` after it) and no lock: for a store that serialises its
    /// own writes (telemetry, `store::telemetry`). Commits on `Ok`.
    pub(super) fn transaction<T>(
        &self,
        begin: &str,
        f: impl FnOnce(&db::Transaction) -> Result<T>,
    ) -> Result<T> {
        let pooled = self.pool.get()?;
        let conn = pooled.conn.as_ref().expect("held until drop");
        let tx = db::Transaction::postgres(conn, begin)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// Runs `f` in a read-only snapshot.
    pub fn read<T>(&self, f: impl FnOnce(&db::Transaction) -> Result<T>) -> Result<T> {
        let pooled = self.pool.get()?;
        let conn = pooled.conn.as_ref().expect("held until drop");
        let tx =
            db::Transaction::postgres(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// The secrets generation as committed by any node.
    /// One statement outside a transaction (one round trip, where a read
    /// transaction takes three): every heartbeat may ask, at most once a
    /// millisecond per node.
    pub fn secrets_generation(&self) -> Result<i64> {
        let pooled = self.pool.get()?;
        let mut conn = pooled.conn.as_ref().expect("held until drop").borrow_mut();
        let st = conn.prepare(
            "SELECT value FROM meta WHERE key = 'secrets_generation'",
            true,
        )?;
        let row = conn.client.query_one(&st, &[]).map_err(|e| {
            conn.broken |= e.is_closed();
            db::Error::from(e)
        })?;
        Ok(row.try_get::<_, i64>(0).map_err(db::Error::from)?)
    }

    /// How many migrations the database has applied.
    pub fn schema_version(&self) -> Result<i64> {
        self.read(|tx| Ok(version(tx)?))
    }

    /// Applies the pending migrations among the first `target` ones, one
    /// transaction each, under the migration lock.
    pub(super) fn migrate(&self, target: usize) -> Result<()> {
        let pooled = self.pool.get()?;
        let conn = pooled.conn.as_ref().expect("held until drop");
        let tx = db::Transaction::postgres(conn, "BEGIN")?;
        tx.query_row("SELECT pg_advisory_xact_lock(?1)", [MIGRATION_LOCK], |_| {
            Ok(())
        })?;
        tx.execute_batch("CREATE TABLE IF NOT EXISTS icpd_schema (version BIGINT NOT NULL)")?;
        if tx
            .prepare("SELECT version FROM icpd_schema")?
            .query_row([], |_| Ok(()))
            .is_err()
        {
            tx.execute("INSERT INTO icpd_schema (version) VALUES (0)", [])?;
        }
        let applied = version(&tx)?;
        let known = MIGRATIONS.len() as i64;
        if applied > known {
            return Err(Error::DataDir(format!(
                "{} has schema version {applied}, but this icpd knows only up to {known}: run a newer icpd",
                self.pool.url.display()
            )));
        }
        for (i, m) in MIGRATIONS
            .iter()
            .enumerate()
            .take(target)
            .skip(applied as usize)
        {
            let n = i as i64 + 1;
            tx.execute_batch(m.sql).map_err(|e| {
                Error::DataDir(format!(
                    "migration {n} ({}) failed on {}: {e}",
                    m.name,
                    self.pool.url.display()
                ))
            })?;
            tx.execute("UPDATE icpd_schema SET version = ?1", [n])?;
            log::info!("applied schema migration {n} ({}) to PostgreSQL", m.name);
        }
        tx.execute_batch(SQLITE_FUNCTIONS)?;
        let collation: String = tx.query_row(
            "SELECT datcollate::text FROM pg_database WHERE datname = current_database()",
            [],
            |r| r.get(0),
        )?;
        if !matches!(collation.as_str(), "C" | "POSIX" | "C.UTF-8" | "C.utf8") {
            log::warn!(
                "{} sorts text by the collation {collation}: ids and handles list in a different order than with SQLite, and prefix lookups cannot use an index; create the database with LC_COLLATE 'C.UTF-8' (README, \"PostgreSQL\")",
                self.pool.url.display()
            );
        }
        tx.commit()?;
        Ok(())
    }
}

/// SQLite's functions that the store's portable SQL uses, defined for
/// PostgreSQL: scalar `max`/`min` of two integers, `instr`, and
/// `json_each` over a JSON array of integers (the id lists the
/// visibility filters bind). Replaced at every start.
const SQLITE_FUNCTIONS: &str = r#"
CREATE OR REPLACE FUNCTION max(a bigint, b bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT GREATEST(a, b)';
CREATE OR REPLACE FUNCTION min(a bigint, b bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT LEAST(a, b)';
CREATE OR REPLACE FUNCTION instr(haystack text, needle text) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT strpos(haystack, needle)';
CREATE OR REPLACE FUNCTION json_each(list text) RETURNS TABLE (value bigint)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS 'SELECT e::bigint FROM jsonb_array_elements_text(list::jsonb) e';
"#;

/// What `icpd check` reads from a PostgreSQL database, without migrating
/// it: the schema version, and every sealed secret and secret
/// configuration value (by key id or sealing context).
pub struct Inspection {
    pub schema_version: i64,
    pub sealed_secrets: Vec<(String, Vec<u8>)>,
}

/// Reads an [`Inspection`] (read only; safe beside running nodes).
pub fn inspect(url: &DatabaseUrl) -> Result<Inspection> {
    let pg = Postgres::connect_unmigrated(url)?;
    pg.read(|tx| {
        let has_schema: bool =
            tx.query_row("SELECT to_regclass('icpd_schema') IS NOT NULL", [], |r| {
                r.get(0)
            })?;
        let schema_version = if has_schema { version(tx)? } else { 0 };
        let sealed_secrets = if schema_version == 0 {
            Vec::new()
        } else {
            let has_config: bool =
                tx.query_row("SELECT to_regclass('config_values') IS NOT NULL", [], |r| {
                    r.get(0)
                })?;
            super::backup::sealed_values(tx, has_config)?
        };
        Ok(Inspection {
            schema_version,
            sealed_secrets,
        })
    })
}

fn version(tx: &db::Transaction) -> db::Result<i64> {
    tx.prepare_cached("SELECT version FROM icpd_schema")?
        .query_row([], |r| r.get(0))
}

/// The notifier thread of [`Postgres::wake_listeners`].
fn notifier(notify: &(Mutex<bool>, Condvar), pool: &Pool) {
    let (flag, wake) = notify;
    loop {
        {
            let mut set = flag.lock().unwrap_or_else(|p| p.into_inner());
            while !*set {
                set = wake.wait(set).unwrap_or_else(|p| p.into_inner());
            }
            *set = false;
        }
        let sent = pool.get().and_then(|pooled| {
            let conn = pooled.conn.as_ref().expect("held until drop");
            let mut c = conn.borrow_mut();
            c.client
                .batch_execute(&format!("NOTIFY {}", super::cluster::CHANGES_CHANNEL))
                .map_err(|e| {
                    c.broken |= e.is_closed();
                    Error::from(e)
                })
        });
        if let Err(e) = sent {
            // The other nodes poll every 250 ms regardless.
            log::debug!("change notification not sent: {e}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for notifications on one channel (see [`Postgres::listener`]).
pub struct Listener {
    url: DatabaseUrl,
    tls: Tls,
    channel: String,
    client: Option<postgres::Client>,
}

impl Listener {
    /// Waits up to `timeout` for a notification; `true` when one (or
    /// more) arrived, `false` when the time ran out or the connection is
    /// down (then the wait still lasts `timeout`, and the next one
    /// reconnects), so a caller that polls after each wait loses nothing.
    pub fn wait(&mut self, timeout: Duration) -> bool {
        let started = Instant::now();
        if self.client.is_none() {
            let connected = match &self.tls {
                Tls::None => self.url.config.connect(postgres::NoTls),
                Tls::Rustls(tls) => self.url.config.connect(tls.clone()),
            }
            .and_then(|mut c| {
                c.batch_execute(&format!("LISTEN {}", self.channel))?;
                Ok(c)
            });
            match connected {
                Ok(c) => self.client = Some(c),
                Err(e) => {
                    log::debug!(
                        "cannot listen for changes on {}: {}",
                        self.url.display(),
                        db::Error::from(e)
                    );
                    std::thread::sleep(timeout.saturating_sub(started.elapsed()));
                    return false;
                }
            }
        }
        use postgres::fallible_iterator::FallibleIterator;
        let client = self.client.as_mut().expect("connected above");
        let outcome = {
            let mut notifications = client.notifications();
            let first = notifications
                .timeout_iter(timeout.saturating_sub(started.elapsed()))
                .next();
            if let Ok(Some(_)) = first {
                // Take whatever else is buffered: one poll covers them all.
                while let Ok(Some(_)) = notifications.iter().next() {}
            }
            first.map(|n| n.is_some())
        };
        match outcome {
            Ok(arrived) => {
                if !arrived && client.is_closed() {
                    self.client = None;
                }
                arrived
            }
            Err(e) => {
                log::debug!(
                    "change listener lost its connection: {}",
                    db::Error::from(e)
                );
                self.client = None;
                std::thread::sleep(timeout.saturating_sub(started.elapsed()));
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{redact, DatabaseUrl, SslMode};

    #[test]
    fn urls_are_checked_and_passwords_never_shown() {
        assert_eq!(
            redact("postgres://icp:s3cret@db.example:5432/icp?sslmode=require"),
            "postgres://icp:***@db.example:5432/icp?sslmode=require"
        );
        assert_eq!(redact("postgres://db/icp"), "postgres://db/icp");
        let u = DatabaseUrl::parse("postgres://icp:pw@127.0.0.1:5/icp?sslmode=require").unwrap();
        assert_eq!(u.ssl_mode, SslMode::Require);
        assert!(!format!("{u:?}").contains("pw"));
        for (url, says) in [
            ("mysql://x/y", "must start with postgres://"),
            (
                "postgres://u:pw@h/d?sslmode=verify-full",
                "needs sslrootcert",
            ),
            (
                "postgres://u:pw@h/d?sslmode=allow",
                "sslmode=allow is not supported",
            ),
        ] {
            let e = DatabaseUrl::parse(url).unwrap_err().to_string();
            assert!(e.contains(says), "{url}: {e}");
            assert!(!e.contains("pw"), "{url}: the password leaked: {e}");
        }
    }
}
