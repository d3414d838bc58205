//! The suite's PostgreSQL half: this test runs the whole test binary again
//! with `ICP_TEST_BACKEND=postgres` (the harness then gives every data
//! directory its own database on a throwaway cluster, see `pg_cluster`),
//! and passes when every test passes there too.
//!
//! Without PostgreSQL binaries it says so loudly and passes, so `cargo
//! test` works on a laptop without PostgreSQL; with `ICP_TEST_REQUIRE_POSTGRES=1`
//! (set by `.ci/run`) it fails instead.

use std::io::Write;
use std::process::{Command, Stdio};

/// Writes past libtest's output capture (which takes `eprintln!` only),
/// so the PostgreSQL half's outcome shows in every `cargo test`.
fn say(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

#[test]
fn every_test_again_on_postgresql() {
    if crate::pg_cluster::enabled() {
        return; // this is the PostgreSQL half itself
    }
    if let Some(why) = crate::pg_cluster::unavailable() {
        let required = std::env::var("ICP_TEST_REQUIRE_POSTGRES").as_deref() == Ok("1");
        say(&format!(
            "\n*** THE POSTGRESQL HALF OF THE SUITE WAS NOT RUN: {why}.\n*** Install PostgreSQL (Debian: apt-get install postgresql) or set ICP_TEST_DATABASE_URL.\n"
        ));
        assert!(!required, "ICP_TEST_REQUIRE_POSTGRES=1: {why}");
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .env("ICP_TEST_BACKEND", "postgres")
        .args(["--skip", "postgres_half::", "--test-threads", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout
        .lines()
        .filter(|l| {
            l.starts_with("test result:")
                || l.contains("FAILED")
                || l.starts_with("failures:")
                || l.starts_with("    ")
        })
        .collect::<Vec<_>>()
        .join("\n");
    say(&format!(
        "\nPostgreSQL half (every integration test again on PostgreSQL):\n{summary}"
    ));
    assert!(
        out.status.success(),
        "the PostgreSQL half failed:\n{stdout}"
    );
}
