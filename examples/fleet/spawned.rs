//! An icpd the fleet starts, restarts and stops itself (`--spawn`), and
//! what it asks of it through the management API: pages of the runtime
//! list, and which runtimes are OFFLINE.

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use icpd::http::client::{Client, ClientTls};

/// The server settings of a spawned icpd: `benchmark.toml` (which explains why).
const BENCHMARK_CONFIG: &str = include_str!("benchmark.toml");

/// How long a start may take before the fleet gives up.
const START_LIMIT: Duration = Duration::from_secs(60);

/// The management user the fleet creates through the CLI.
const USER: &str = "fleet";
const PASSWORD: &str = "fleet-benchmark-password";

/// A running icpd child process on fixed loopback ports, so that a restart
/// comes back on the same addresses.
pub struct Spawned {
    icpd: PathBuf,
    data_dir: PathBuf,
    tls: bool,
    runtime_port: u16,
    management_port: u16,
    heartbeat_timeout_s: u64,
    /// The server's config file (TOML), written before every launch.
    config_toml: String,
    child: Option<Child>,
    /// Where the server's log goes (appended across restarts).
    pub log: PathBuf,
}

impl Spawned {
    /// Starts icpd on free loopback ports and waits until it answers.
    /// Returns the server and how long it took to become ready.
    pub fn start(
        icpd: &Path,
        data_dir: &Path,
        tls: bool,
        heartbeat_timeout_s: u64,
    ) -> Result<(Spawned, Duration), String> {
        Spawned::start_with_config(icpd, data_dir, tls, heartbeat_timeout_s, BENCHMARK_CONFIG)
    }

    /// As `start`, with `config_toml` as the server's config file instead
    /// of `benchmark.toml`.
    pub fn start_with_config(
        icpd: &Path,
        data_dir: &Path,
        tls: bool,
        heartbeat_timeout_s: u64,
        config_toml: &str,
    ) -> Result<(Spawned, Duration), String> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| format!("creating {}: {e}", data_dir.display()))?;
        let log = data_dir.join("fleet-server.log");
        let mut s = Spawned {
            icpd: icpd.to_path_buf(),
            data_dir: data_dir.to_path_buf(),
            tls,
            runtime_port: free_port()?,
            management_port: free_port()?,
            heartbeat_timeout_s,
            config_toml: config_toml.to_string(),
            child: None,
            log,
        };
        let (_, ready) = s.launch()?;
        Ok((s, ready))
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    pub fn runtime_url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme(), self.runtime_port)
    }

    pub fn management_url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme(), self.management_port)
    }

    pub fn client_tls(&self) -> ClientTls {
        if self.tls {
            ClientTls::Insecure
        } else {
            ClientTls::Plain
        }
    }

    /// Starts the process (again, after `stop` or `kill`) and waits for both
    /// listeners to answer; returns when it was spawned and the time from
    /// the spawn to ready.
    pub fn launch(&mut self) -> Result<(Instant, Duration), String> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("opening {}: {e}", self.log.display()))?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let config = self.data_dir.join("fleet-icp.toml");
        std::fs::write(&config, &self.config_toml)
            .map_err(|e| format!("writing {}: {e}", config.display()))?;
        let mut cmd = Command::new(&self.icpd);
        cmd.arg("--data-dir")
            .arg(&self.data_dir)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--runtime-listen")
            .arg(format!("127.0.0.1:{}", self.runtime_port))
            .arg("--management-listen")
            .arg(format!("127.0.0.1:{}", self.management_port))
            .arg("--heartbeat-timeout")
            .arg(format!("{}s", self.heartbeat_timeout_s))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        if !self.tls {
            cmd.arg("--no-tls");
        }
        let started = Instant::now();
        self.child = Some(
            cmd.spawn()
                .map_err(|e| format!("cannot run {}: {e}", self.icpd.display()))?,
        );
        self.wait_ready(started)?;
        Ok((started, started.elapsed()))
    }

    /// Ready: the management listener answers `/healthz` with 200, and the
    /// runtime listener answers an HTTP request (a 404 is an answer).
    fn wait_ready(&mut self, started: Instant) -> Result<(), String> {
        let tls = self.client_tls();
        let answers = |url: &str, path: &str, want: Option<u16>| -> bool {
            let Ok(mut c) = Client::new(url, tls.clone()) else {
                return false;
            };
            c.set_timeout(Duration::from_secs(2));
            match c.request("GET", path, &[], b"") {
                Ok(r) => want.is_none_or(|w| r.status == w),
                Err(_) => false,
            }
        };
        let (m, r) = (self.management_url(), self.runtime_url());
        let (mut management, mut runtime) = (false, false);
        while started.elapsed() < START_LIMIT {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                return Err(format!(
                    "icpd exited ({status}) before it was ready; see {}",
                    self.log.display()
                ));
            }
            management = management || answers(&m, "/healthz", Some(200));
            runtime = runtime || answers(&r, "/", None);
            if management && runtime {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Err(format!(
            "icpd was not ready after {} s; see {}",
            START_LIMIT.as_secs(),
            self.log.display()
        ))
    }

    /// SIGTERM, wait for the exit; returns how long the stop took.
    pub fn stop(&mut self) -> Result<Duration, String> {
        let started = Instant::now();
        let mut child = self.child.take().ok_or("icpd is not running")?;
        // SAFETY: kill only sends a signal to our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("icpd stopped with {status}"));
        }
        Ok(started.elapsed())
    }

    /// SIGKILL: no flush, no shutdown, nothing but what is on disk.
    pub fn kill(&mut self) -> Result<(), String> {
        let mut child = self.child.take().ok_or("icpd is not running")?;
        // SAFETY: kill only sends a signal to our own child, not yet reaped.
        if unsafe { libc::kill(child.id() as i32, libc::SIGKILL) } != 0 {
            return Err(format!("kill: {}", std::io::Error::last_os_error()));
        }
        child.wait().map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Runs `icpd --data-dir DIR args...`, with `stdin` written to it;
    /// returns its standard output, or its standard error as the error.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        let mut child = Command::new(&self.icpd)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.icpd.display()))?;
        if let (Some(mut pipe), Some(text)) = (child.stdin.take(), stdin) {
            pipe.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
        }
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            Err(format!(
                "icpd {} failed ({}): {}{}",
                args.join(" "),
                out.status,
                stdout,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Stops the server and starts it again on the same ports and data.
    pub fn restart(&mut self) -> Result<Restart, String> {
        let down_from = Instant::now();
        let stop = self.stop()?;
        let (spawned, ready) = self.launch()?;
        Ok(Restart {
            stop,
            down_from,
            ready_at: spawned + ready,
            start_to_ready: ready,
        })
    }

    /// Creates the fleet's management user (Viewer is enough to read) and
    /// signs in; the returned client carries its token.
    pub fn management(&self) -> Result<Management, String> {
        self.management_as(USER, "Viewer")
    }

    /// Creates the management user `user` with `role` through the CLI
    /// (unless it exists) and signs in as it.
    pub fn management_as(&self, user: &str, role: &str) -> Result<Management, String> {
        let created = self.cli(
            &["user", "create", user, "--role", role, "--password-stdin"],
            Some(PASSWORD),
        );
        if let Err(e) = created {
            if !e.contains("exists") {
                return Err(e);
            }
        }
        Management::login(&self.management_url(), self.client_tls(), user, PASSWORD)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop();
        }
    }
}

/// What a restart took.
pub struct Restart {
    pub stop: Duration,
    pub down_from: Instant,
    pub ready_at: Instant,
    pub start_to_ready: Duration,
}

/// A signed-in management API client.
pub struct Management {
    url: String,
    tls: ClientTls,
    client: Client,
    bearer: String,
}

impl Management {
    /// Signs in to the management API at `url` as `user`.
    pub fn login(
        url: &str,
        tls: ClientTls,
        user: &str,
        password: &str,
    ) -> Result<Management, String> {
        let mut client = Client::new(url, tls.clone()).map_err(|e| e.to_string())?;
        let r = client
            .post_json(
                "/api/v1/auth/login",
                None,
                &serde_json::json!({"username": user, "password": password}),
            )
            .map_err(|e| format!("login: {e}"))?;
        if r.status != 200 {
            return Err(format!(
                "login: HTTP {} {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            ));
        }
        let token = r.json()["token"]
            .as_str()
            .ok_or("login answered no token")?
            .to_string();
        Ok(Management {
            url: url.to_string(),
            tls,
            client,
            bearer: format!("Bearer {token}"),
        })
    }

    /// Sends `method path` with an optional JSON body; returns the status
    /// and the body as JSON (`Null` when it is not JSON), whatever the status.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let bytes = body.map(Value::to_string).unwrap_or_default();
        let mut headers = vec![("Authorization", self.bearer.as_str())];
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        let r = self
            .client
            .request(method, path, &headers, bytes.as_bytes())
            .map_err(|e| format!("{method} {path}: {e}"))?;
        Ok((r.status, r.json()))
    }

    /// Another session-less client with the same token, for another thread.
    pub fn another(&self) -> Result<Management, String> {
        Ok(Management {
            url: self.url.clone(),
            tls: self.tls.clone(),
            client: Client::new(&self.url, self.tls.clone()).map_err(|e| e.to_string())?,
            bearer: self.bearer.clone(),
        })
    }

    /// GET `path` as JSON.
    pub fn get(&mut self, path: &str) -> Result<Value, String> {
        let r = self
            .client
            .request("GET", path, &[("Authorization", &self.bearer)], b"")
            .map_err(|e| format!("GET {path}: {e}"))?;
        if r.status != 200 {
            return Err(format!(
                "GET {path}: HTTP {} {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            ));
        }
        serde_json::from_slice(&r.body).map_err(|e| format!("GET {path}: {e}"))
    }

    /// The ids of every OFFLINE runtime, walking all pages.
    pub fn offline(&mut self) -> Result<HashSet<String>, String> {
        let mut ids = HashSet::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = "/api/v1/runtimes?status=OFFLINE&limit=500".to_string();
            if let Some(c) = &cursor {
                path.push_str("&cursor=");
                path.push_str(c);
            }
            let page = self.get(&path)?;
            for item in page["items"].as_array().into_iter().flatten() {
                if let Some(id) = item["runtimeId"].as_str() {
                    ids.insert(id.to_string());
                }
            }
            match page["nextCursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return Ok(ids),
            }
        }
    }
}

/// A free loopback port (bound, then released for icpd to take).
fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}
