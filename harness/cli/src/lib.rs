//! The `isobench` command: arguments in, an exit code out.
//!
//! This crate is the edge of the program: it parses arguments, picks the target (which
//! backend: the local emulator, AWS or existing endpoints), shows progress, handles signals
//! and maps outcomes to documented exit codes. It measures, summarises and renders nothing
//! itself: runs are done by `isobench-runner` (the engine), reports and comparisons by
//! `isobench-report`, and neither knows the command line.

mod agent;
pub mod args;
#[cfg(feature = "aws")]
mod aws;
pub mod compare;
mod endpoints;
mod errors;
mod explore;
mod output;
mod plan;
mod progress;
mod report;
mod run;
mod signals;
mod sweep;
mod target;

use clap::Parser;

pub use errors::CliError;

/// Runs the command line and returns the process exit code.
pub fn main_entry() -> i32 {
    let cli = match args::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { isobench_results::exit::BAD_INPUT } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    init_logging(&cli.log);
    let result = match cli.command {
        args::Command::Run(a) => run::run(a),
        args::Command::Validate(a) => run::validate(a),
        args::Command::Sweep(a) => sweep::sweep(a),
        args::Command::Report(a) => report::report(a),
        args::Command::Compare(a) => compare::run(a),
        args::Command::Plan(a) => sweep::plan(a),
        args::Command::Explore(a) => explore::explore(a),
        args::Command::Agent(a) => agent::agent(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
