//! The test harness: temporary directories, a [`TestServer`] running the
//! real binary on port 0, a [`Bridge`] speaking the runtime protocol, an
//! [`MiRuntime`] speaking it as Micro Integrator does, and [`Sse`], a
//! Server-Sent Events reader.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use icpd::http::client::{Client, ClientResponse, ClientTls};
use rustls::pki_types::pem::PemObject;
use serde_json::{json, Value};

/// A directory under the system temp dir, removed on drop.
pub struct TestDir {
    pub path: PathBuf,
}

impl TestDir {
    pub fn new(tag: &str) -> TestDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "icpd-test-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TestDir { path }
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_for(what: &str, timeout: Duration, cond: impl FnMut() -> bool) {
    wait_for_timed(what, Instant::now(), timeout, cond);
}

/// [`wait_for`], also telling how long after `since` the condition was
/// last seen false: the start of the last check that found it false. It
/// became true after that, so a bound "within N" put on this is not
/// stretched by slow checks (a CLI process on a loaded machine).
pub fn wait_for_timed(
    what: &str,
    since: Instant,
    timeout: Duration,
    mut cond: impl FnMut() -> bool,
) -> Duration {
    let start = Instant::now();
    let mut last_false = Duration::ZERO;
    loop {
        let check = Instant::now();
        if cond() {
            return last_false;
        }
        last_false = check.saturating_duration_since(since);
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the peer has not closed `s` (reads and discards whatever is
/// waiting, without blocking).
pub fn still_open(s: &mut TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    let open = loop {
        match s.read(&mut buf) {
            Ok(0) => break false,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break true,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break false,
        }
    };
    s.set_nonblocking(false).unwrap();
    open
}

/// Whether the peer closes `s` (EOF or reset) within `within`, reading
/// and discarding what arrives before (a response, a TLS alert). Reads at
/// least once, so a close already made counts even with no time left.
pub fn closes_within(s: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match s.read(&mut chunk) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// Unix milliseconds of a time as the API and the CLI print it (RFC 3339).
pub fn millis(v: &Value) -> i64 {
    let text = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("not RFC 3339: {text}: {e}"))
        .timestamp_millis()
}

/// The port of a listener URL such as `https://127.0.0.1:40123`.
pub fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

/// The `icpd` binary under test.
pub fn icpd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_icpd"));
    c.env_remove("ICP_DATA_DIR")
        .env_remove("ICP_CONFIG")
        .env_remove("ICP_MASTER_KEY")
        .env_remove("ICP_DATABASE_URL");
    c
}

/// The `icpd` binary under test on the data directory `data_dir`, and on
/// its own PostgreSQL database when the suite runs on PostgreSQL.
pub fn icpd_at(data_dir: &Path) -> Command {
    let mut c = icpd();
    c.arg("--data-dir").arg(data_dir);
    if let Some(url) = crate::pg_cluster::url_for(data_dir) {
        c.env("ICP_DATABASE_URL", url);
    }
    c
}

/// The store of the data directory `data_dir`, opened in this process.
pub fn open_store(data_dir: &Path) -> icpd::store::Store {
    match crate::pg_cluster::url_for(data_dir) {
        Some(url) => {
            icpd::store::Store::connect(&icpd::store::postgres::DatabaseUrl::parse(&url).unwrap())
                .unwrap()
        }
        None => icpd::store::Store::open(&data_dir.join("icp.db")).unwrap(),
    }
}

/// Whether the suite runs on SQLite; a test of the SQLite file itself
/// (its bytes, its backup, its crash recovery) returns early otherwise,
/// saying so.
pub fn on_sqlite(test: &str) -> bool {
    let sqlite = !crate::pg_cluster::enabled();
    if !sqlite {
        eprintln!("{test}: a test of the SQLite file; not run on PostgreSQL");
    }
    sqlite
}

/// Runs the shell command `cleanup` once this test process is gone,
/// whatever ends it (a watcher in its own session polls for our pid), so
/// a server shared by the tests (PostgreSQL, slapd) never outlives them.
pub fn after_this_process(cleanup: &str) {
    let watch = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {cleanup}",
        pid = std::process::id()
    );
    Command::new("setsid")
        .args(["sh", "-c", &watch])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
        // The watcher outlives this handle on purpose.
        .try_wait()
        .unwrap();
}

/// What a [`TestServer`] is started with beyond its defaults.
#[derive(Default)]
pub struct ServeOptions<'a> {
    /// Flags after `serve`.
    pub args: &'a [&'a str],
    /// Environment variables (e.g. `ICP_LOG`).
    pub env: &'a [(&'a str, &'a str)],
    /// `./icp.toml`, the configuration `serve` reads from its working
    /// directory, there from the first start.
    pub icp_toml: Option<&'a str>,
    /// The open file limit (soft and hard); inherited if `None`.
    pub nofile: Option<u64>,
}

/// A running `icpd serve` with its own data directory.
pub struct TestServer {
    pub dir: TestDir,
    pub data_dir: PathBuf,
    pub extra_args: Vec<String>,
    /// Environment variables the server is started with (e.g. `ICP_LOG`).
    pub env: Vec<(String, String)>,
    nofile: Option<u64>,
    child: Option<Child>,
    pub log: Arc<Mutex<Vec<String>>>,
    /// Signalled when the log reader has read the server's stderr to its end.
    log_done: Option<Mutex<std::sync::mpsc::Receiver<()>>>,
    pub runtime_url: String,
    pub management_url: String,
}

impl TestServer {
    /// Starts a server with TLS on and `extra` serve flags.
    pub fn start(extra: &[&str]) -> TestServer {
        TestServer::start_with_env(extra, &[])
    }

    /// Like [`TestServer::start`], with environment variables for the server.
    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> TestServer {
        TestServer::start_with(ServeOptions {
            args: extra,
            env,
            ..ServeOptions::default()
        })
    }

    /// Starts a server with TLS on and `options`.
    pub fn start_with(options: ServeOptions) -> TestServer {
        let dir = TestDir::new("srv");
        let data_dir = dir.path.join("data");
        if let Some(toml) = options.icp_toml {
            std::fs::write(dir.path.join("icp.toml"), toml).unwrap();
        }
        let mut s = TestServer {
            dir,
            data_dir,
            extra_args: options.args.iter().map(|s| s.to_string()).collect(),
            env: options
                .env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            nofile: options.nofile,
            child: None,
            log: Arc::new(Mutex::new(Vec::new())),
            log_done: None,
            runtime_url: String::new(),
            management_url: String::new(),
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let mut cmd = icpd_at(&self.data_dir);
        cmd.args([
            "serve",
            "--runtime-listen",
            "127.0.0.1:0",
            "--management-listen",
            "127.0.0.1:0",
        ]);
        cmd.args(&self.extra_args).current_dir(&self.dir.path);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(n) = self.nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe and touches only the child.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        cmd.stdout(Stdio::null())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = cmd.spawn().expect("start icpd");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        self.log = log.clone();
        let (done, log_done) = std::sync::mpsc::channel();
        self.log_done = Some(Mutex::new(log_done));
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log.lock().unwrap().push(line);
            }
            let _ = done.send(());
        });
        self.child = Some(child);
        let find = |log: &Arc<Mutex<Vec<String>>>, what: &str| -> Option<String> {
            log.lock()
                .unwrap()
                .iter()
                .find_map(|l| l.split_once(what).map(|(_, url)| url.trim().to_string()))
        };
        let log = self.log.clone();
        let start = Instant::now();
        loop {
            if let (Some(r), Some(m)) = (
                find(&log, "listening runtime "),
                find(&log, "listening management "),
            ) {
                self.runtime_url = r;
                self.management_url = m;
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("icpd exited with {status}: {:#?}", log.lock().unwrap());
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "icpd did not start: {:#?}",
                log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Path of the generated certificate, for verifying clients.
    pub fn cert(&self) -> PathBuf {
        self.data_dir.join("tls").join("cert.pem")
    }

    fn tls(&self, url: &str) -> ClientTls {
        if url.starts_with("https") {
            ClientTls::Verify(self.cert())
        } else {
            ClientTls::Plain
        }
    }

    /// A keep-alive client to the runtime listener that verifies the server certificate.
    pub fn runtime_client(&self) -> Client {
        Client::new(&self.runtime_url, self.tls(&self.runtime_url)).unwrap()
    }

    /// A keep-alive client to the management listener.
    pub fn management_client(&self) -> Client {
        Client::new(&self.management_url, self.tls(&self.management_url)).unwrap()
    }

    /// Runs an admin command on this server's data directory.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli(&self.data_dir, args)
    }

    /// Runs an admin command that must succeed and returns its JSON output.
    pub fn cli_json(&self, args: &[&str]) -> Value {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "icpd {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("icpd {args:?}: not JSON ({e})"))
    }

    /// Creates a secret in `env`, bound to `binding` (project, integration) when given.
    pub fn secret(&self, env: &str, binding: Option<(&str, &str)>) -> String {
        let mut args = vec!["secret", "create", "--env", env, "--json"];
        if let Some((p, i)) = binding {
            args.extend(["--project", p, "--integration", i]);
        }
        self.cli_json(&args)["secret"].as_str().unwrap().to_string()
    }

    /// One runtime, as `runtime show --json` reports it.
    pub fn runtime(&self, id: &str) -> Value {
        self.cli_json(&["runtime", "show", id, "--json"])
    }

    /// All runtimes, as `runtime list --json` reports them.
    pub fn runtimes(&self) -> Vec<Value> {
        self.cli_json(&["runtime", "list", "--json"])
            .as_array()
            .unwrap()
            .clone()
    }

    /// Status of one runtime per `runtime list`, or None if it is not listed.
    pub fn status_of(&self, id: &str) -> Option<String> {
        self.runtimes()
            .iter()
            .find(|r| r["runtimeId"] == id)
            .map(|r| r["status"].as_str().unwrap().to_string())
    }

    /// Sends SIGTERM and waits for the exit; returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                // Its last lines ("stopped in ...") may still be in the
                // pipe: read to the end before anyone looks at the log.
                if let Some(done) = self.log_done.take() {
                    let done = done.into_inner().unwrap_or_else(|p| p.into_inner());
                    let _ = done.recv_timeout(Duration::from_secs(5));
                }
                return status.code();
            }
            if start.elapsed() > Duration::from_secs(15) {
                let _ = child.kill();
                panic!("icpd did not stop within 15 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `sig` (e.g. `libc::SIGSTOP`, `libc::SIGCONT`) to the server.
    pub fn signal(&self, sig: i32) {
        let child = self.child.as_ref().expect("the server is running");
        // SAFETY: kill only sends a signal to our own child.
        assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
    }

    /// `n` runtimes (`node-0`...) on one unbound secret of `env`, each
    /// registered by a full heartbeat.
    pub fn fleet(&self, env: &str, n: usize) -> Vec<Bridge> {
        let secret = self.secret(env, None);
        let mut c = self.runtime_client();
        (0..n)
            .map(|i| {
                let b = Bridge::new(&secret, Some(&format!("node-{i}")));
                assert_ack(&b.full(&mut c));
                b
            })
            .collect()
    }

    /// Stops the server (SIGSTOP) for `pause` and lets it continue, as a
    /// paused VM would.
    pub fn pause(&self, pause: Duration) {
        self.signal(libc::SIGSTOP);
        std::thread::sleep(pause);
        self.signal(libc::SIGCONT);
    }

    /// Stops (SIGTERM) and starts again on the same data directory.
    pub fn restart(&mut self) {
        assert_eq!(self.stop(), Some(0));
        self.spawn();
    }

    /// Starts again after [`TestServer::stop`].
    pub fn restart_stopped(&mut self) {
        assert!(self.child.is_none(), "still running");
        self.spawn();
    }

    /// The server's stderr so far.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The server's side of a failed test: its last log lines.
            let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
            let tail = &log[log.len().saturating_sub(30)..];
            eprintln!(
                "--- the server's last {} log lines ---\n{}",
                tail.len(),
                tail.join("\n")
            );
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs an admin command on a data directory.
pub fn cli(data_dir: &Path, args: &[&str]) -> Output {
    icpd_at(data_dir).args(args).output().unwrap()
}

/// Runs an admin command on a data directory with `stdin` as its standard input.
pub fn cli_stdin(data_dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut cmd = icpd_at(data_dir);
    cmd.args(args);
    output_with_stdin(cmd, stdin)
}

/// Runs `cmd` with `stdin` as its standard input; collects its output.
pub fn output_with_stdin(mut cmd: Command, stdin: &str) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// The newest 10 audit entries of the database in `data_dir`, newest first.
pub fn recent_audit(data_dir: &Path) -> Vec<icpd::store::AuditRow> {
    let store = open_store(data_dir);
    store
        .read(|tx| {
            tx.audit(&icpd::store::AuditFilter {
                limit: 10,
                ..Default::default()
            })
        })
        .unwrap()
        .0
}

/// A simulated runtime bridge: the state it reports and the calls it makes.
#[derive(Clone)]
pub struct Bridge {
    pub secret: String,
    pub runtime_id: String,
    pub name: Option<String>,
    pub env: String,
    pub project: String,
    pub integration: String,
    pub runtime_type: String,
    pub listener_state: String,
}

impl Bridge {
    pub fn new(secret: &str, name: Option<&str>) -> Bridge {
        Bridge {
            secret: secret.to_string(),
            runtime_id: uuid(),
            name: name.map(str::to_string),
            env: "dev".into(),
            project: "order-service".into(),
            integration: "order-create".into(),
            runtime_type: "BI".into(),
            listener_state: "enabled".into(),
        }
    }

    pub fn token(&self) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        icpd::protocol::token::issue(
            &self.secret,
            &icpd::config::Config::defaults().token,
            now,
            3600,
        )
    }

    pub fn hash(&self) -> String {
        format!("hash-{}", self.listener_state)
    }

    pub fn full_body(&self) -> Value {
        let mut hb = json!({
            "runtimeId": self.runtime_id, "runtimeType": self.runtime_type, "heartbeatVersion": "v1.0",
            "status": "RUNNING", "environment": self.env, "project": self.project, "component": self.integration,
            "version": "1.0.0",
            "nodeInfo": {"platformName": "ballerina", "platformVersion": "2201.13.2", "osName": "Linux"},
            "artifacts": {
                "listeners": [{"name": "listener_1", "package": "ballerina/http:2", "protocol": "HTTP",
                               "port": 9090, "host": "0.0.0.0", "state": self.listener_state}],
                "services": [{"name": "service_1", "basePath": "/orders", "package": "acme/orders:1",
                              "listeners": [{"name": "listener_1"}],
                              "resources": [{"methods": ["GET"], "url": "/"}, {"methods": ["POST"], "url": "/{id}"}],
                              "state": "enabled"}],
                "main": {"packageOrg": "acme", "packageName": "orders", "packageVersion": "1.0.0"}
            },
            "logLevels": {"acme/orders": "INFO"},
            "runtimeHash": self.hash(),
            "timestamp": [1795348800, 0.5]
        });
        if let Some(n) = &self.name {
            hb["runtime"] = n.clone().into();
        }
        hb
    }

    pub fn delta_body(&self) -> Value {
        json!({"runtimeId": self.runtime_id, "heartbeatVersion": "v1.0", "runtimeHash": self.hash(),
               "timestamp": [1795348810, 0.5]})
    }

    pub fn full(&self, c: &mut Client) -> ClientResponse {
        c.post_json("/icp/heartbeat", Some(&self.token()), &self.full_body())
            .unwrap()
    }

    /// A full heartbeat that reports `version` as the runtime's version.
    pub fn full_at(&self, c: &mut Client, version: &str) -> ClientResponse {
        let mut body = self.full_body();
        body["version"] = version.into();
        c.post_json("/icp/heartbeat", Some(&self.token()), &body)
            .unwrap()
    }

    pub fn delta(&self, c: &mut Client) -> ClientResponse {
        c.post_json(
            "/icp/deltaHeartbeat",
            Some(&self.token()),
            &self.delta_body(),
        )
        .unwrap()
    }
}

/// A simulated Micro Integrator node (MI.md; `mi.py` is the reference
/// stand-in): the full and delta heartbeats it sends and the token it
/// mints. Its artifacts start as one entry of each of the 15 kinds, as
/// MI.md's example shows them; `artifacts` may be changed freely.
#[derive(Clone)]
pub struct MiRuntime {
    pub secret: String,
    pub runtime_id: String,
    /// `icp_config.runtime`, the node name; `None` leaves `runtime` out.
    pub name: Option<String>,
    pub env: String,
    pub project: String,
    /// `icp_config.integration`, sent as `component`.
    pub integration: String,
    /// `runtimeHostname` (MI's `[server] hostname`).
    pub runtime_hostname: Value,
    /// `runtimePort`: a string, as MI sends it.
    pub runtime_port: Value,
    /// The `artifacts` object: the 15 lists.
    pub artifacts: Value,
}

impl MiRuntime {
    pub fn new(secret: &str, env: &str, project: &str, integration: &str, name: &str) -> MiRuntime {
        let capp = "HealthcareCompositeExporter";
        let artifacts = json!({
            "apis": [{"name": "HealthcareAPI", "context": "/healthcare", "version": "1.0.0",
                      "url": "http://mi-node-1.example.com:8290/healthcare",
                      "urls": ["http://mi-node-1.example.com:8290/healthcare"], "type": "API",
                      "carbonApp": capp, "tracing": "disabled", "statistics": "disabled",
                      "resources": [{"path": "/doctors/{specialty}", "methods": "GET"}]}],
            "proxyServices": [MiRuntime::proxy("StockQuoteProxy")],
            "endpoints": [{"name": "StockQuoteEP", "type": "AddressEndpoint", "carbonApp": capp,
                           "state": "enabled", "tracing": "disabled", "statistics": "disabled",
                           "attributes": [{"name": "Address", "value": "http://localhost:9000/services/SimpleStockQuoteService"}]}],
            "inboundEndpoints": [{"name": "OrderHttpInbound", "protocol": "http", "state": "enabled",
                                  "statistics": "disabled", "tracing": "disabled",
                                  "sequence": "OrderProcessingSeq", "onError": "CommonFaultSeq"}],
            "sequences": [{"name": "OrderProcessingSeq", "type": "Sequence", "carbonApp": capp,
                           "tracing": "disabled", "statistics": "disabled"}],
            "tasks": [{"name": "InventorySyncTask", "state": "enabled", "group": "synapse.simple.quartz",
                       "class": "org.apache.synapse.startup.tasks.MessageInjector"}],
            "templates": [{"name": "LogAndRespondTemplate", "type": "sequence", "statistics": "disabled"}],
            "messageStores": [{"name": "OrderStore", "type": "InMemoryStore", "size": 3}],
            "messageProcessors": [{"name": "OrderForwarder", "type": "ScheduledMessageForwardingProcessor",
                                   "state": "enabled", "messageStore": "OrderStore"}],
            "localEntries": [{"name": "ServiceConfig", "carbonApp": capp, "type": "Inline Text"}],
            "dataServices": [{"name": "CustomerDataService", "type": "DataService", "carbonApp": capp,
                              "description": "Customer records", "configs": ["CustomerDS"],
                              "operationCount": 2, "queryCount": 2}],
            "carbonApps": [{"name": capp, "version": "1.0.0", "status": "active",
                            "artifacts": [{"name": "HealthcareAPI", "type": "api"}]}],
            "dataSources": [{"name": "CustomerDS", "type": "RDBMS", "driver": "org.h2.Driver",
                             "url": "jdbc:h2:./repository/database/customers", "hasUsername": true}],
            "connectors": [{"name": "http", "package": "org.wso2.carbon.connector",
                            "description": "HTTP connector", "status": "enabled"}],
            "registryResources": [{"name": "config", "type": "directory"}]
        });
        let runtime_id = uuid();
        let mut mi = MiRuntime {
            secret: secret.to_string(),
            runtime_id,
            name: Some(name.to_string()),
            env: env.into(),
            project: project.into(),
            integration: integration.into(),
            runtime_hostname: json!("127.0.0.1"),
            runtime_port: json!("9164"),
            artifacts,
        };
        let id = mi.runtime_id.clone();
        mi.artifacts["carbonApps"][0]["runtimeId"] = id.into();
        mi
    }

    /// A proxy service entry as MI reports it.
    pub fn proxy(name: &str) -> Value {
        json!({"name": name, "type": "ProxyService", "state": "enabled",
               "carbonApp": "HealthcareCompositeExporter", "tracing": "disabled", "statistics": "disabled",
               "endpoints": [format!("http://mi-node-1.example.com:8290/services/{name}")]})
    }

    /// The same node with `n` proxy services (`proxy-00000`, ...) instead
    /// of its one.
    pub fn with_proxies(mut self, n: usize) -> MiRuntime {
        self.artifacts["proxyServices"] = (0..n)
            .map(|i| MiRuntime::proxy(&format!("proxy-{i:05}")))
            .collect();
        self
    }

    pub fn set_runtime_hostname(&mut self, host: impl Into<Value>) {
        self.runtime_hostname = host.into();
    }

    /// A port as MI sends it (`"9164"`), or any value to test refusals.
    pub fn set_runtime_port(&mut self, port: impl Into<Value>) {
        self.runtime_port = port.into();
    }

    /// How many artifacts the full heartbeat reports, all lists together.
    pub fn artifact_count(&self) -> usize {
        self.artifacts
            .as_object()
            .unwrap()
            .values()
            .filter_map(Value::as_array)
            .map(Vec::len)
            .sum()
    }

    /// The token MI mints: header `{"kid","alg"}` without `typ`; claims
    /// iss, aud (a string), exp (an hour), iat and scope; no `nbf`, no
    /// `sub`. HMAC-SHA256 keyed by the key material's text.
    pub fn token(&self) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
        use base64::Engine;
        let (kid, material) = match self.secret.find('.') {
            Some(i) if i > 0 && i < self.secret.len() - 1 => {
                (&self.secret[..i], &self.secret[i + 1..])
            }
            _ => ("", self.secret.as_str()),
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = json!({"kid": kid, "alg": "HS256"});
        let claims = json!({"iss": "icp-runtime-jwt-issuer", "aud": "icp-server", "exp": now + 3600,
                            "iat": now, "scope": "runtime_agent"});
        let input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, material.as_bytes());
        let sig = ring::hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", B64URL.encode(sig.as_ref()))
    }

    /// Everything the hash covers: the full heartbeat without
    /// `runtimeHash`, `timestamp` and the memory figures.
    fn hashed(&self) -> Value {
        let mut p = json!({
            "heartbeatVersion": "v1.0", "runtimeId": self.runtime_id,
            "runtimeType": "MI", "status": "RUNNING",
            "environment": self.env, "project": self.project, "component": self.integration,
            "version": "4.5.0",
            "runtimeHostname": self.runtime_hostname, "runtimePort": self.runtime_port,
            "nodeInfo": {"platformName": "WSO2 Micro Integrator", "platformVersion": "4.5.0",
                         "platformHome": "/opt/wso2mi-4.5.0", "osName": "Linux", "osVersion": "6.1.0",
                         "osArch": "amd64", "javaVersion": "21.0.5", "carbonHome": null,
                         "javaVendor": "Eclipse Adoptium"},
            "artifacts": self.artifacts,
        });
        if let Some(n) = &self.name {
            p["runtime"] = n.clone().into();
        }
        p
    }

    /// `runtimeHash`. MI's is base64 MD5; the server only compares it,
    /// never recomputes it, so a digest of the same members stands in.
    pub fn hash(&self) -> String {
        use base64::Engine;
        let d = ring::digest::digest(&ring::digest::SHA256, self.hashed().to_string().as_bytes());
        base64::engine::general_purpose::STANDARD.encode(&d.as_ref()[..16])
    }

    pub fn full_body(&self) -> Value {
        let mut p = self.hashed();
        p["nodeInfo"]["totalMemory"] = 536870912.into();
        p["nodeInfo"]["freeMemory"] = 257949696.into();
        p["nodeInfo"]["maxMemory"] = 1073741824u64.into();
        p["nodeInfo"]["usedMemory"] = 278921216.into();
        p["runtimeHash"] = self.hash().into();
        p["timestamp"] = json!([1795348810, 0.538148938]);
        p
    }

    pub fn delta_body(&self) -> Value {
        json!({"heartbeatVersion": "v1.0", "runtimeId": self.runtime_id,
               "runtimeHash": self.hash(), "timestamp": [1795348810, 0.538148938]})
    }

    pub fn full(&self, c: &mut Client) -> ClientResponse {
        c.post_json("/icp/heartbeat", Some(&self.token()), &self.full_body())
            .unwrap()
    }

    pub fn delta(&self, c: &mut Client) -> ClientResponse {
        c.post_json(
            "/icp/deltaHeartbeat",
            Some(&self.token()),
            &self.delta_body(),
        )
        .unwrap()
    }
}

/// A random version-4 UUID.
pub fn uuid() -> String {
    let b: [u8; 16] = icpd::master_key::random_bytes().unwrap();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// Asserts a JSON error response with this status and code.
#[track_caller]
/// Five `GET /healthz` in a row on `c`, each answered 200 within a
/// second: no request worker is held up.
pub fn assert_healthz_answers_at_once(c: &mut Client) {
    for _ in 0..5 {
        let t = Instant::now();
        let r = c.request("GET", "/healthz", &[], b"").unwrap();
        assert_eq!(r.status, 200);
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    }
}

pub fn assert_error(r: &ClientResponse, status: u16, code: &str) {
    let body = r.json();
    assert_eq!(r.status, status, "body: {body}");
    assert_eq!(body["error"]["code"], code, "body: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "body: {body}"
    );
}

/// Asserts an acknowledged heartbeat response and returns `fullHeartbeatRequired`.
#[track_caller]
pub fn assert_ack(r: &ClientResponse) -> bool {
    let body = r.json();
    assert_eq!(r.status, 200, "body: {body}");
    assert_eq!(body["acknowledged"], true, "body: {body}");
    assert!(
        body["commands"].is_array() && body["supportedHeartbeatFields"].is_array(),
        "body: {body}"
    );
    body["fullHeartbeatRequired"].as_bool().unwrap()
}

/// The password the harness gives the users it creates.
pub const TEST_PASSWORD: &str = "correct-horse-battery";

/// The `name=value` part of a login response's session cookie.
pub fn session_cookie(login: &ClientResponse) -> String {
    login
        .header("set-cookie")
        .expect("a session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// Runs `icpd user create NAME [--role ROLE] --password-stdin` with the
/// password on standard input.
pub fn user_create(data_dir: &Path, name: &str, password: &str, role: Option<&str>) -> Output {
    let mut args = vec!["user", "create", name, "--password-stdin"];
    if let Some(r) = role {
        args.extend(["--role", r]);
    }
    cli_stdin(data_dir, &args, &format!("{password}\n"))
}

/// A management API client signed in with a bearer token.
pub struct ApiClient {
    pub client: Client,
    pub token: String,
}

impl ApiClient {
    fn send(&mut self, method: &str, path: &str, body: Option<&Value>) -> ClientResponse {
        let auth = format!("Bearer {}", self.token);
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let mut headers = vec![("Authorization", auth.as_str())];
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        self.client.request(method, path, &headers, &bytes).unwrap()
    }
    pub fn get(&mut self, path: &str) -> ClientResponse {
        self.send("GET", path, None)
    }
    pub fn post(&mut self, path: &str, body: &Value) -> ClientResponse {
        self.send("POST", path, Some(body))
    }
    pub fn put(&mut self, path: &str, body: &Value) -> ClientResponse {
        self.send("PUT", path, Some(body))
    }
    pub fn patch(&mut self, path: &str, body: &Value) -> ClientResponse {
        self.send("PATCH", path, Some(body))
    }
    pub fn delete(&mut self, path: &str) -> ClientResponse {
        self.send("DELETE", path, None)
    }
}

impl TestServer {
    /// Creates a user with a role at organization scope (or none) through the CLI.
    pub fn create_user(&self, name: &str, role: Option<&str>) {
        let out = user_create(&self.data_dir, name, TEST_PASSWORD, role);
        assert!(
            out.status.success(),
            "user create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Signs in and returns the login response.
    pub fn login(&self, name: &str, password: &str) -> ClientResponse {
        self.management_client()
            .post_json(
                "/api/v1/auth/login",
                None,
                &json!({"username": name, "password": password}),
            )
            .unwrap()
    }

    /// `GET /api/v1/openapi.json` (public).
    pub fn openapi_document(&self) -> Value {
        self.management_client()
            .request("GET", "/api/v1/openapi.json", &[], b"")
            .unwrap()
            .json()
    }

    /// Signs in through ICP 2's `POST /auth/login` (the console's login).
    pub fn icp_login(&self, name: &str, password: &str) -> ClientResponse {
        self.management_client()
            .post_json(
                "/auth/login",
                None,
                &json!({"username": name, "password": password}),
            )
            .unwrap()
    }

    /// A signed-in API client for a new user with this organization-wide role.
    pub fn api_as(&self, name: &str, role: Option<&str>) -> ApiClient {
        self.create_user(name, role);
        let r = self.login(name, TEST_PASSWORD);
        assert_eq!(r.status, 200, "login: {}", r.json());
        ApiClient {
            client: self.management_client(),
            token: r.json()["token"].as_str().unwrap().to_string(),
        }
    }

    /// A signed-in Super Admin.
    pub fn admin(&self) -> ApiClient {
        self.api_as("root", Some("Super Admin"))
    }

    /// A new session of the Super Admin made by [`TestServer::admin`].
    pub fn admin_again(&self) -> ApiClient {
        let r = self.login("root", TEST_PASSWORD);
        assert_eq!(r.status, 200, "login: {}", r.json());
        ApiClient {
            client: self.management_client(),
            token: r.json()["token"].as_str().unwrap().to_string(),
        }
    }
}

impl TestServer {
    /// `GET path` on the management listener as an event stream, with `headers`.
    pub fn open_sse(&self, path: &str, headers: &[(&str, &str)]) -> Opened {
        Sse::open(&self.management_url, &self.cert(), path, headers)
    }
}

// ---- Server-Sent Events ------------------------------------------------------------

/// What an event-stream request may return: a stream or a plain answer.
pub enum Opened {
    Stream(Sse),
    Refused(u16, Value),
}

trait Conn: Read + Write + Send {}
impl<T: Read + Write + Send> Conn for T {}

/// A tiny Server-Sent Events reader over one connection.
pub struct Sse {
    conn: Box<dyn Conn>,
    tcp: TcpStream,
    head: String,
    buf: Vec<u8>,
    eof: bool,
}

/// One frame: its event name (`:` and the text for a comment), id and
/// JSON data (`Null` when it has none).
#[derive(Debug)]
pub struct Frame {
    pub event: String,
    pub id: String,
    pub data: Value,
}

impl Sse {
    /// Connects to `url` (http or https, the certificate verified against
    /// `cert`) and sends `GET path` with `headers`.
    pub fn open(url: &str, cert: &std::path::Path, path: &str, headers: &[(&str, &str)]) -> Opened {
        let (https, authority) = match url.strip_prefix("https://") {
            Some(a) => (true, a),
            None => (false, url.strip_prefix("http://").unwrap()),
        };
        let tcp = TcpStream::connect(authority).unwrap();
        let mut conn: Box<dyn Conn> = if https {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(rustls::pki_types::CertificateDer::from_pem_file(cert).unwrap())
                .unwrap();
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
            let host = authority.rsplit_once(':').unwrap().0;
            let name = rustls::pki_types::ServerName::try_from(host.to_string()).unwrap();
            let c = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
            Box::new(rustls::StreamOwned::new(c, tcp.try_clone().unwrap()))
        } else {
            Box::new(tcp.try_clone().unwrap())
        };
        let mut req =
            format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: text/event-stream\r\n");
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("\r\n");
        conn.write_all(req.as_bytes()).unwrap();
        conn.flush().unwrap();
        let mut sse = Sse {
            conn,
            tcp,
            head: String::new(),
            buf: Vec::new(),
            eof: false,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let end = loop {
            if let Some(i) = sse.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            assert!(!sse.eof && Instant::now() < deadline, "no response head");
            sse.fill(deadline);
        };
        sse.head = String::from_utf8(sse.buf[..end].to_vec()).unwrap();
        sse.buf.drain(..end + 4);
        let status: u16 = sse.head[9..12].parse().unwrap();
        // 101: a WebSocket upgrade (read with `ws_message`).
        if status != 200 && status != 101 {
            let len: usize = sse.header("content-length").unwrap().parse().unwrap();
            while sse.buf.len() < len && !sse.eof {
                sse.fill(deadline);
            }
            return Opened::Refused(status, serde_json::from_slice(&sse.buf[..len]).unwrap());
        }
        Opened::Stream(sse)
    }

    /// The next WebSocket message within `timeout` (opcode, payload);
    /// server frames are unmasked. `None` at end of stream or timeout.
    pub fn ws_message(&mut self, timeout: Duration) -> Option<(u8, Vec<u8>)> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.buf.len() >= 2 {
                let opcode = self.buf[0] & 0x0f;
                let (len, at) = match self.buf[1] & 0x7f {
                    126 if self.buf.len() >= 4 => (
                        usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]])),
                        4,
                    ),
                    127 if self.buf.len() >= 10 => (
                        u64::from_be_bytes(self.buf[2..10].try_into().unwrap()) as usize,
                        10,
                    ),
                    126 | 127 => (usize::MAX, 0),
                    n => (usize::from(n), 2),
                };
                if len != usize::MAX && self.buf.len() >= at + len {
                    let payload = self.buf[at..at + len].to_vec();
                    self.buf.drain(..at + len);
                    return Some((opcode, payload));
                }
            }
            if self.eof || Instant::now() >= deadline {
                return None;
            }
            self.fill(deadline);
        }
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    /// Reads what arrives until `deadline` (at most 100 ms per call).
    fn fill(&mut self, deadline: Instant) {
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(1), Duration::from_millis(100));
        self.tcp.set_read_timeout(Some(wait)).unwrap();
        let mut chunk = [0u8; 16 * 1024];
        match self.conn.read(&mut chunk) {
            Ok(0) => self.eof = true,
            Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => self.eof = true,
        }
    }

    /// The next frame (events and comments), or `None` at EOF or timeout.
    pub fn next_frame(&mut self, timeout: Duration) -> Option<Frame> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let text = String::from_utf8(self.buf[..i].to_vec()).unwrap();
                self.buf.drain(..i + 2);
                let mut f = Frame {
                    event: String::new(),
                    id: String::new(),
                    data: Value::Null,
                };
                for line in text.lines() {
                    if let Some(c) = line.strip_prefix(':') {
                        f.event = format!(":{}", c.trim());
                    } else if let Some(e) = line.strip_prefix("event: ") {
                        f.event = e.to_string();
                    } else if let Some(i) = line.strip_prefix("id: ") {
                        f.id = i.to_string();
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        f.data = serde_json::from_str(d).unwrap();
                    }
                }
                return Some(f);
            }
            if self.eof || Instant::now() >= deadline {
                return None;
            }
            self.fill(deadline);
        }
    }

    /// The next event (comments skipped) within `timeout`.
    pub fn next_event(&mut self, timeout: Duration) -> Option<Frame> {
        let deadline = Instant::now() + timeout;
        loop {
            let f = self.next_frame(deadline.saturating_duration_since(Instant::now()))?;
            if !f.event.starts_with(':') {
                return Some(f);
            }
        }
    }

    /// The next event (comments skipped); panics after `timeout`.
    #[track_caller]
    pub fn event(&mut self, timeout: Duration) -> Frame {
        self.next_event(timeout)
            .unwrap_or_else(|| panic!("no event within {timeout:?}"))
    }

    /// Waits for an event named `name` whose data satisfies `pred`,
    /// skipping others; panics after `timeout`.
    #[track_caller]
    pub fn expect(
        &mut self,
        name: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        let mut skipped = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left) {
                Some(f) if f.event == name && pred(&f.data) => return f.data,
                Some(f) => skipped.push(f),
                None => panic!("no {name} event within {timeout:?}; saw {skipped:?}"),
            }
        }
    }

    /// Reads until the server closes the connection; true if it did within `timeout`.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.eof && Instant::now() < deadline {
            self.buf.clear();
            self.fill(deadline);
        }
        self.eof
    }
}

/// Where the server keeps telemetry: `telemetry.db` (read-only), or the
/// PostgreSQL database of the data directory.
pub enum TelemetryDb {
    File(rusqlite::Connection),
    Shared(postgres::Client),
}

/// A parameter of [`TelemetryDb::rows`].
pub enum P<'a> {
    I(i64),
    T(&'a str),
}

/// The telemetry database the server of `data_dir` writes.
pub fn telemetry_db(data_dir: &Path) -> TelemetryDb {
    match crate::pg_cluster::url_for(data_dir) {
        Some(url) => TelemetryDb::Shared(postgres::Client::connect(&url, postgres::NoTls).unwrap()),
        None => TelemetryDb::File(
            rusqlite::Connection::open_with_flags(
                data_dir.join("telemetry.db"),
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .unwrap(),
        ),
    }
}

impl TelemetryDb {
    /// The rows of `sql` (`?N` placeholders; the same SQL on both), each
    /// value as JSON (integers, reals, text, null).
    pub fn rows(&mut self, sql: &str, params: &[P]) -> Vec<Vec<Value>> {
        match self {
            TelemetryDb::File(db) => {
                let values: Vec<rusqlite::types::Value> = params
                    .iter()
                    .map(|p| match p {
                        P::I(i) => (*i).into(),
                        P::T(t) => t.to_string().into(),
                    })
                    .collect();
                let mut st = db.prepare(sql).unwrap();
                let n = st.column_count();
                st.query_map(rusqlite::params_from_iter(values), |r| {
                    (0..n)
                        .map(|i| {
                            use rusqlite::types::ValueRef as V;
                            Ok(match r.get_ref(i)? {
                                V::Null => Value::Null,
                                V::Integer(i) => json!(i),
                                V::Real(f) => json!(f),
                                V::Text(t) => json!(String::from_utf8_lossy(t)),
                                V::Blob(_) => panic!("a blob in telemetry"),
                            })
                        })
                        .collect()
                })
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
            }
            TelemetryDb::Shared(db) => {
                let sql = sql.replace('?', "$");
                let owned: Vec<Box<dyn postgres::types::ToSql + Sync>> = params
                    .iter()
                    .map(|p| -> Box<dyn postgres::types::ToSql + Sync> {
                        match p {
                            P::I(i) => Box::new(*i),
                            P::T(t) => Box::new(t.to_string()),
                        }
                    })
                    .collect();
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    owned.iter().map(|b| b.as_ref()).collect();
                use postgres::types::Type;
                db.query(&sql, &refs)
                    .unwrap()
                    .iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|i| match *r.columns()[i].type_() {
                                Type::INT8 => json!(r.get::<_, Option<i64>>(i)),
                                Type::INT4 => json!(r.get::<_, Option<i32>>(i)),
                                Type::FLOAT8 => json!(r.get::<_, Option<f64>>(i)),
                                Type::TEXT => json!(r.get::<_, Option<String>>(i)),
                                ref t => panic!("a {t} column in telemetry"),
                            })
                            .collect()
                    })
                    .collect()
            }
        }
    }

    /// The one value of `sql`.
    pub fn value(&mut self, sql: &str, params: &[P]) -> Value {
        self.rows(sql, params).remove(0).remove(0)
    }
}
