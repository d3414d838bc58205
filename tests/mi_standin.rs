//! The stand-in MI runtime for tests: `../shared/conformance/mi.py run`
//! as a child process, heartbeating to a [`TestServer`] and (unless
//! `--tunnel`) serving a fake Management API over HTTPS, recording every
//! call it gets in a calls file. Killed on drop.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::harness::TestServer;

/// One mi.py process.
pub struct MiStandIn {
    child: Child,
    port: Option<u16>,
    pub runtime_id: String,
    pub calls_file: PathBuf,
    log: PathBuf,
}

/// `<manifest>/../shared/conformance/mi.py`; from a worktree one level
/// further down (`<repo>/../wt/<name>`), the same file one level up.
pub fn mi_py() -> PathBuf {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join("shared/conformance/mi.py"))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "no ../shared/conformance/mi.py beside {}",
                manifest.display()
            )
        })
}

impl MiStandIn {
    /// Starts mi.py as node `name` heartbeating to `server` with `secret`
    /// (environment dev, project order-service, integration order-mi
    /// unless `extra` says otherwise), and waits for the first line it
    /// prints (its port, or that it runs tunnelled).
    pub fn start(server: &TestServer, secret: &str, name: &str, extra: &[&str]) -> MiStandIn {
        let calls_file = server.dir.path.join(format!("{name}-calls.jsonl"));
        let log = server.dir.path.join(format!("{name}.log"));
        let mut child = Command::new("python3")
            .arg(mi_py())
            .args(["run", "--server", &server.runtime_url, "--secret", secret])
            .args(["--env", "dev", "--runtime", name])
            .arg("--calls-file")
            .arg(&calls_file)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("python3 runs mi.py");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut stand_in = MiStandIn {
            child,
            port: None,
            runtime_id: String::new(),
            calls_file,
            log,
        };
        // "management API listening on https://...(port N, runtimeId ID)" or
        // "tunnel mode: no management port; ... (runtimeId ID)".
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("mi.py printed nothing ({e}): {}", stand_in.log_text()));
        if !line.starts_with("tunnel mode") {
            assert!(
                line.starts_with("management API listening on https://"),
                "mi.py must serve HTTPS (is openssl installed?): {line}"
            );
            stand_in.port = line
                .split("(port ")
                .nth(1)
                .and_then(|rest| rest.split(',').next())
                .and_then(|p| p.parse().ok());
        }
        stand_in.runtime_id = line
            .split("runtimeId ")
            .nth(1)
            .map(|rest| rest.trim_end_matches(')').to_string())
            .unwrap_or_else(|| panic!("no runtimeId in {line:?}"));
        stand_in
    }

    /// The Management API's port (not in tunnel mode).
    pub fn port(&self) -> u16 {
        self.port.expect("a stand-in in tunnel mode serves no port")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Every call mi.py recorded so far, in order.
    pub fn calls(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.calls_file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for MiStandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
