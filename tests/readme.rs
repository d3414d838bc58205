//! The README works when pasted (issue 13): every ```sh block in README.md
//! runs, in order, in one bash (`-euo pipefail`, so variables and functions
//! carry from block to block as in a reader's terminal) against a freshly
//! started server with a fresh data directory.
//!
//! What the test arranges, and all it changes in the blocks:
//!
//! - The server is the real binary on port 0 ([`TestServer`]). In every
//!   block, `127.0.0.1:9445` and `localhost:9445` become the runtime
//!   listener's host:port, `127.0.0.1:9446` and `localhost:9446` the
//!   management listener's ([`ports`]). Nothing else in a block changes.
//! - The shell's directory holds `icp-data`, a link to the server's data
//!   directory, as the README's `cargo run --release -- serve` would leave
//!   it; `icpd` on its `PATH` is the binary under test (CARGO_BIN_EXE_icpd).
//!   Its environment is emptied but for `PATH` and `HOME` (a fresh
//!   directory, so no `~/.curlrc` applies).
//! - A block is skipped only when the line before it in README.md is
//!   `<!-- readme-test: skip (REASON) -->`. The one skipped block that
//!   starts the example runtime is stood in for: the test sends the full
//!   heartbeat it would send first, with its flags and `$ICP_SECRET`
//!   ([`example_runtime_stand_in`]).
//!
//! A block fails when bash exits (a failing command, an unset variable, a
//! failing stage of a pipe), when it prints an icpd error object
//! (`{"error":{"code":...`: curl calls use `-s`, not `-f`, so a reader sees
//! the answer), or when it runs longer than [`BLOCK_TIMEOUT`]. The failure
//! shows the block, its line in README.md and its output. Besides, every
//! block (skipped or not) calls curl with `-s`, and the first block is the
//! two set-up commands, `cargo run --release -- serve` and `cargo test`.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::harness::{assert_ack, port_of, Bridge, TestDir, TestServer};

/// How long one block may run (a loaded 2-core machine, debug build).
const BLOCK_TIMEOUT: Duration = Duration::from_secs(120);

/// The marker a skipped block is preceded by: `<!-- readme-test: skip (REASON) -->`.
const SKIP_MARKER: &str = "<!-- readme-test: skip";

/// What an icpd error answer starts with.
const ERROR_OBJECT: &str = r#"{"error":{"code":"#;

/// One ```sh block of a Markdown text.
#[derive(Debug)]
struct Block {
    /// Line of the opening fence, from 1.
    line: usize,
    /// The commands, without the fence's indentation.
    text: String,
    /// The reason given by a skip marker on the line before the fence.
    skip: Option<String>,
}

/// The ```sh blocks of `markdown`, with their skip markers. A skip marker
/// that is not right before a ```sh fence, and a shell block fenced as
/// anything but `sh` (which this check would not see), are errors.
fn sh_blocks(markdown: &str) -> Result<Vec<Block>, String> {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let trimmed = lines[i].trim();
        if trimmed.starts_with(SKIP_MARKER) && lines.get(i + 1).map(|l| l.trim()) != Some("```sh") {
            return Err(format!(
                "README.md:{}: a skip marker must be the line right before a ```sh block",
                i + 1
            ));
        }
        let Some(info) = trimmed.strip_prefix("```") else {
            i += 1;
            continue;
        };
        if matches!(info.trim(), "bash" | "shell" | "console" | "zsh") {
            return Err(format!(
                "README.md:{}: fence shell commands as ```sh, so that this check runs them",
                i + 1
            ));
        }
        let end = (i + 1..lines.len())
            .find(|&j| lines[j].trim() == "```")
            .ok_or_else(|| format!("README.md:{}: the block is never closed", i + 1))?;
        if info.trim() == "sh" {
            let indent = lines[i].len() - lines[i].trim_start().len();
            let text: Vec<&str> = lines[i + 1..end]
                .iter()
                .map(|l| l.get(indent..).unwrap_or(l.trim_start()))
                .collect();
            let skip = match i.checked_sub(1).map(|m| lines[m].trim()) {
                Some(marker) if marker.starts_with(SKIP_MARKER) => {
                    Some(skip_reason(marker).ok_or_else(|| {
                        format!(
                            "README.md:{i}: write a skip marker as `{SKIP_MARKER} (REASON) -->`"
                        )
                    })?)
                }
                _ => None,
            };
            blocks.push(Block {
                line: i + 1,
                text: text.join("\n"),
                skip,
            });
        }
        i = end + 1;
    }
    Ok(blocks)
}

/// REASON of `<!-- readme-test: skip (REASON) -->`.
fn skip_reason(marker: &str) -> Option<String> {
    let reason = marker
        .strip_prefix(SKIP_MARKER)?
        .trim()
        .strip_suffix("-->")?
        .trim()
        .strip_prefix('(')?
        .strip_suffix(')')?
        .trim();
    (!reason.is_empty()).then(|| reason.to_string())
}

/// The README's default ports, turned into the test server's.
fn ports(text: &str, runtime_port: u16, management_port: u16) -> String {
    let mut text = text.to_string();
    for host in ["127.0.0.1", "localhost"] {
        text = text
            .replace(&format!("{host}:9445"), &format!("{host}:{runtime_port}"))
            .replace(
                &format!("{host}:9446"),
                &format!("{host}:{management_port}"),
            );
    }
    text
}

/// One bash that runs blocks one after another, keeping its variables and
/// functions, as a reader's terminal does.
struct Shell {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    scripts: TestDir,
    next: usize,
}

/// Why a block failed, with what it printed.
struct Failure {
    why: String,
    output: String,
}

impl Shell {
    /// bash in `cwd` with `bin_dir` first on its `PATH`.
    fn start(cwd: &Path, bin_dir: &Path) -> Shell {
        let scripts = TestDir::new("readme-blocks");
        let home = scripts.path.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
        );
        // On the PostgreSQL half, the commands use the server's database.
        let database_url = std::fs::canonicalize(cwd.join("icp-data"))
            .ok()
            .and_then(|data| crate::pg_cluster::url_for(&data));
        let mut child = Command::new("bash")
            .args(["--noprofile", "--norc", "-euo", "pipefail"])
            .current_dir(cwd)
            .env_clear()
            .env("PATH", path)
            .env("HOME", &home)
            .envs(database_url.map(|u| ("ICP_DATABASE_URL", u)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start bash");
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut buf = Vec::new();
            while reader.read_until(b'\n', &mut buf).map_or(0, |n| n) > 0 {
                let line = String::from_utf8_lossy(&buf)
                    .trim_end_matches('\n')
                    .to_string();
                if send.send(line).is_err() {
                    break;
                }
                buf.clear();
            }
        });
        let mut stdin = child.stdin.take().unwrap();
        // The blocks' error messages go with their output, in order.
        writeln!(stdin, "exec 2>&1").unwrap();
        Shell {
            child,
            stdin,
            lines,
            scripts,
            next: 0,
        }
    }

    /// Runs `text` in the shell (sourced, so that what it defines stays)
    /// and returns what it printed.
    fn run(&mut self, text: &str) -> Result<String, Failure> {
        self.next += 1;
        let file = self.scripts.path.join(format!("block-{}.sh", self.next));
        std::fs::write(&file, format!("{text}\n")).unwrap();
        let done = format!("@@readme-test done {}", self.next);
        // The block reads /dev/null, never the commands still to come. A
        // failed write means bash has exited (maybe in this very block,
        // having read its first line): the output tells.
        let command = format!(
            ". '{}' </dev/null\nprintf '\\n%s\\n' '{done}'\n",
            file.display()
        );
        let _ = self.stdin.write_all(command.as_bytes());
        let mut output: Vec<String> = Vec::new();
        let deadline = Instant::now() + BLOCK_TIMEOUT;
        let finished = loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) if line == done => break Ok(()),
                Ok(line) => output.push(line),
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    break Err(format!("still running after {BLOCK_TIMEOUT:?}"));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().unwrap();
                    break Err(format!("bash exited ({status})"));
                }
            }
        };
        // The newline printed before the done marker.
        if output.last().is_some_and(String::is_empty) {
            output.pop();
        }
        let output = output.join("\n");
        match finished {
            Err(why) => Err(Failure { why, output }),
            Ok(()) if output.contains(ERROR_OBJECT) => Err(Failure {
                why: "icpd answered with an error".into(),
                output,
            }),
            Ok(()) => Ok(output),
        }
    }

    /// The value of a shell variable.
    fn value(&mut self, name: &str) -> String {
        match self.run(&format!("printf '%s\\n' \"${{{name}}}\"")) {
            Ok(v) => v,
            Err(f) => panic!("reading ${name}: {}\n{}", f.why, f.output),
        }
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What running a Markdown text's blocks did.
#[derive(Debug)]
struct Summary {
    ran: usize,
    skipped: Vec<(usize, String)>,
}

/// Runs the ```sh blocks of `markdown` in `shell`, in order, after
/// `edit`; calls `skipped` for each skipped block. Stops at the first
/// failing block, and returns it with its output as the error.
fn run_blocks(
    markdown: &str,
    shell: &mut Shell,
    edit: impl Fn(&str) -> String,
    mut skipped: impl FnMut(&Block, &mut Shell),
) -> Result<Summary, String> {
    let mut summary = Summary {
        ran: 0,
        skipped: Vec::new(),
    };
    for block in sh_blocks(markdown)? {
        if let Some(reason) = &block.skip {
            skipped(&block, shell);
            summary.skipped.push((block.line, reason.clone()));
            continue;
        }
        let text = edit(&block.text);
        match shell.run(&text) {
            Ok(_) => summary.ran += 1,
            Err(f) => {
                return Err(format!(
                    "the README's ```sh block at line {} failed: {}\n\
                     ---- block (as run) ----\n{text}\n---- output ----\n{}\n----\n\
                     ({} blocks before it ran)",
                    block.line, f.why, f.output, summary.ran
                ))
            }
        }
    }
    Ok(summary)
}

/// In place of the skipped block that starts the example runtime
/// (`cargo run ... --example runtime -- FLAGS`): its first full heartbeat,
/// with the block's `--env`, `--project`, `--integration`, `--name` and
/// `--runtime-id` (the example's defaults otherwise) and the shell's
/// `$ICP_SECRET`, as the example reads it.
fn example_runtime_stand_in(server: &TestServer, block: &Block, shell: &mut Shell) {
    let Some((_, flags)) = block.text.split_once("--example runtime --") else {
        return;
    };
    let words: Vec<&str> = flags
        .split_whitespace()
        .take_while(|w| !w.starts_with('>') && *w != "&")
        .filter(|w| *w != "\\")
        .collect();
    let flag = |name: &str| {
        words
            .windows(2)
            .find(|w| w[0] == name)
            .map(|w| w[1].to_string())
    };
    let mut runtime = Bridge::new(
        &shell.value("ICP_SECRET"),
        Some(&flag("--name").unwrap_or_else(|| "node-1".into())),
    );
    for (name, field) in [
        ("--env", &mut runtime.env),
        ("--project", &mut runtime.project),
        ("--integration", &mut runtime.integration),
        ("--runtime-id", &mut runtime.runtime_id),
    ] {
        if let Some(v) = flag(name) {
            *field = v;
        }
    }
    assert_ack(&runtime.full(&mut server.runtime_client()));
}

#[test]
fn readme_blocks_run_as_written_against_a_fresh_server() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    // A new user's set-up is two commands, and the first block is them.
    let setup = &sh_blocks(&readme).unwrap()[0];
    let commands: Vec<&str> = setup
        .text
        .lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        commands,
        ["cargo run --release -- serve", "cargo test"],
        "README.md:{}: the set-up block",
        setup.line
    );

    // curl without -s prints a progress meter into what a reader copies.
    for block in sh_blocks(&readme).unwrap() {
        for line in block.text.lines().filter(|l| l.contains("curl ")) {
            let flags = line.split("curl ").nth(1).unwrap().split_whitespace();
            assert!(
                flags
                    .take_while(|w| w.starts_with('-'))
                    .any(|w| !w.starts_with("--") && w.contains('s')),
                "README.md, block at line {}: give curl -s first: {line}",
                block.line
            );
        }
    }

    let server = TestServer::start(&[]);
    let (runtime_port, management_port) = (
        port_of(&server.runtime_url),
        port_of(&server.management_url),
    );
    std::os::unix::fs::symlink(&server.data_dir, server.dir.path.join("icp-data")).unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_icpd"));
    let mut shell = Shell::start(&server.dir.path, bin.parent().unwrap());
    let summary = run_blocks(
        &readme,
        &mut shell,
        |text| ports(text, runtime_port, management_port),
        |block, shell| example_runtime_stand_in(&server, block, shell),
    )
    .unwrap_or_else(|e| panic!("{e}\nserver log:\n{}", server.log_text()));

    // Not captured by the test runner, so `cargo test` shows it.
    let mut report = format!(
        "README.md: ran {} ```sh blocks, skipped {}",
        summary.ran,
        summary.skipped.len()
    );
    for (line, reason) in &summary.skipped {
        report += &format!("\n  skipped line {line}: {reason}");
    }
    let _ = writeln!(std::io::stderr(), "{report}");
    assert!(summary.ran > summary.skipped.len(), "{report}");
}

/// The check itself: a failing block stops the run and is shown with its
/// output; later blocks do not run; state carries between blocks.
#[test]
fn a_failing_block_stops_the_run_and_is_shown_with_its_output() {
    let dir = TestDir::new("readme-check");
    let markdown = "# t\n\n```sh\nx=carried\necho first\n```\n\n\
        <!-- readme-test: skip (never runs) -->\n```sh\nexit 3\n```\n\n\
        ```toml\nnot = \"run\"\n```\n\n\
        ```sh\necho \"second $x\"\nfalse\necho never\n```\n\n```sh\ntouch third\n```\n";
    let mut shell = Shell::start(&dir.path, Path::new("/nonexistent"));
    let mut skipped = Vec::new();
    let err = run_blocks(
        markdown,
        &mut shell,
        |t| t.to_string(),
        |b, _| skipped.push(b.line),
    )
    .unwrap_err();
    assert_eq!(skipped, [9]);
    assert!(err.contains("block at line 17 failed"), "{err}");
    let output = err.split("---- output ----").nth(1).unwrap();
    assert!(output.contains("second carried"), "{err}");
    assert!(!output.contains("never"), "{err}");
    assert!(err.contains("(1 blocks before it ran)"), "{err}");
    assert!(!dir.path.join("third").exists());

    // An unset variable and an icpd error answer fail a block too.
    for (block, why) in [
        ("echo $UNSET_VARIABLE", "bash exited"),
        (
            r#"echo '{"error":{"code":"not_found","message":"no such thing"}}'"#,
            "icpd answered with an error",
        ),
    ] {
        let mut shell = Shell::start(&dir.path, Path::new("/nonexistent"));
        let markdown = format!("```sh\n{block}\n```\n");
        let err = run_blocks(&markdown, &mut shell, |t| t.to_string(), |_, _| {}).unwrap_err();
        assert!(err.contains(why), "{err}");
    }
}

#[test]
fn skip_markers_and_shell_fences_are_checked() {
    for (markdown, error) in [
        (
            "<!-- readme-test: skip (x) -->\nsome text\n```sh\ntrue\n```\n",
            "must be the line right before",
        ),
        (
            "<!-- readme-test: skip (x) -->\n```toml\na = 1\n```\n",
            "must be the line right before",
        ),
        ("<!-- readme-test: skip -->\n```sh\ntrue\n```\n", "(REASON)"),
        ("```bash\ntrue\n```\n", "as ```sh"),
    ] {
        let err = sh_blocks(markdown).unwrap_err();
        assert!(err.contains(error), "{markdown}: {err}");
    }
    let blocks = sh_blocks(
        "1. step\n\n   <!-- readme-test: skip (a reason) -->\n   ```sh\n   a \\\n     b\n   ```\n",
    )
    .unwrap();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].line, 4);
    assert_eq!(blocks[0].text, "a \\\n  b");
    assert_eq!(blocks[0].skip.as_deref(), Some("a reason"));
    assert_eq!(
        ports("https://localhost:9445 https://127.0.0.1:9446/api", 1, 2),
        "https://localhost:1 https://127.0.0.1:2/api"
    );
}
