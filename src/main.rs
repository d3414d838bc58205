//! The `icpd` binary: parse the command line, set up logging, run, and turn
//! an error into a message on stderr and exit code 1.

use clap::Parser;

fn main() {
    let cli = icpd::cli::Cli::parse();
    let default_level = if cli.is_serve() { "info" } else { "warn" };
    env_logger::Builder::from_env(env_logger::Env::new().filter_or("ICP_LOG", default_level))
        .init();
    if let Err(e) = icpd::cli::run(cli) {
        eprintln!("icpd: {e}");
        std::process::exit(1);
    }
}
