//! The `isobench` command: scenario → plan → backend → traffic → results → report.
//!
//! This crate is the edge of the program: it owns argument parsing, signals, progress
//! display and the mapping of outcomes to exit codes. The measuring is done by the crates
//! below it (`isobench-core`, `isobench-load`, `isobench-local`, `isobench-results`), which
//! know nothing of the command line.

pub mod args;
#[cfg(feature = "aws")]
mod aws;
pub mod compare;
mod cost;
mod endpoints;
mod errors;
mod hostinfo;
mod noisy;
mod progress;
mod render;
mod report;
mod report_cost;
mod run;
mod signals;
mod summarize;
mod sweep;
mod usage;

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
        args::Command::Report(a) => render::report(a),
        args::Command::Compare(a) => compare::run(a),
        args::Command::Plan(a) => sweep::plan(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

/// Writes to stdout, ignoring a closed pipe (`isobench validate x | head` must not panic).
/// SIGPIPE stays ignored, as Rust sets it, because the harness also writes to sockets.
pub(crate) fn out(text: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_fmt(text);
}

/// `println!` through [`out`].
macro_rules! outln {
    ($($arg:tt)*) => { $crate::out(format_args!("{}\n", format_args!($($arg)*))) };
}
pub(crate) use outln;

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
