//! The `icpd` binary: parse the command line, set up logging, run, and turn
//! an error into a message on stderr and exit code 1.

use clap::Parser;

fn main() {
    let cli = icpd::cli::Cli::parse();
    let default_level = if cli.is_serve() { "info" } else { "warn" };
    if !cli.is_serve() {
        // Rust ignores SIGPIPE, so `icpd runtime show ID | head` would panic
        // in println! once head exits. An admin command, like any Unix
        // filter, just ends there; the server keeps ignoring it, since a
        // peer gone from a socket is an error to handle, not a reason to die.
        // SAFETY: restoring a signal's default disposition, before any
        // thread is started.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    env_logger::Builder::from_env(env_logger::Env::new().filter_or("ICP_LOG", default_level))
        .init();
    if let Err(e) = icpd::cli::run(cli) {
        eprintln!("icpd: {e}");
        std::process::exit(1);
    }
}
