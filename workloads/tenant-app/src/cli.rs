//! Command line and environment configuration.
//!
//! `serve` is also what runs when no subcommand is given, so `tenant-app --listen ...` works and
//! a bare `tenant-app` serves on the defaults. The Lambda front end will hook into
//! [`Cli::into_command`]: started by AWS as `bootstrap` with no arguments and
//! `AWS_LAMBDA_RUNTIME_API` set, the default becomes `lambda` instead of `serve`. Options every
//! front end shares live in [`AppArgs`] so that subcommand can flatten them too.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::fault::FaultConfig;
use crate::handler::{Config, DEFAULT_MAX_RECORD_BYTES};
use crate::ids::parse_tenant;
use crate::store::Hygiene;

/// Sample multi-tenant workload for isobench: a record store and CPU burner, per tenant.
#[derive(Debug, Parser)]
#[command(name = "tenant-app", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Options of `serve`, for when no subcommand is given.
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP/1.1 API (the default when no subcommand is given).
    Serve(ServeArgs),
}

impl Cli {
    /// The command to run: the one named, else `serve` with the top-level options.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Serve(self.serve))
    }
}

/// Parses the process's arguments (and `TENANT_APP_*` variables) into a command.
pub fn parse() -> Command {
    Cli::parse().into_command()
}

/// Options of the HTTP server.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port. The bound address is printed on stdout as
    /// `listening on <addr>`.
    #[arg(long, env = "TENANT_APP_LISTEN", default_value = "0.0.0.0:8080", value_name = "ADDR:PORT")]
    pub listen: SocketAddr,

    /// Tokio worker threads [default: available CPUs].
    #[arg(long, env = "TENANT_APP_WORKERS", value_name = "THREADS")]
    pub workers: Option<NonZeroUsize>,

    /// After SIGTERM/SIGINT, how long in-flight requests may take to finish (e.g. `30s`, `500ms`).
    #[arg(long, env = "TENANT_APP_SHUTDOWN_GRACE", default_value = "30s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub shutdown_grace: Duration,

    #[command(flatten)]
    pub app: AppArgs,
}

impl ServeArgs {
    /// Worker threads to start.
    pub fn workers(&self) -> usize {
        self.workers.or_else(|| std::thread::available_parallelism().ok()).map_or(1, NonZeroUsize::get)
    }
}

/// Options of the tenant logic, shared by every front end.
#[derive(Debug, Clone, Args)]
pub struct AppArgs {
    /// Serve only this tenant (a silo instance); requests for any other tenant get 403.
    #[arg(long, env = "TENANT_APP_TENANT", value_parser = parse_tenant, value_name = "TENANT_ID")]
    pub tenant: Option<String>,

    /// How per-tenant state is kept: `scoped` (keyed and purged per tenant) or `naive` (a cache
    /// keyed without the tenant and temp files never removed: the leak the probes look for).
    #[arg(long, env = "TENANT_APP_HYGIENE", value_enum, default_value_t = Hygiene::Scoped)]
    pub hygiene: Hygiene,

    /// Directory for record files (scoped: `<dir>/tenants/<tenant>/<key>`, naive: `<dir>/cache-<key>`).
    #[arg(long, env = "TENANT_APP_TMP_DIR", default_value = "/tmp", value_name = "DIR")]
    pub tmp_dir: PathBuf,

    /// Largest record a PUT accepts, in bytes; larger ones get 413.
    #[arg(long, env = "TENANT_APP_MAX_RECORD_BYTES", default_value_t = DEFAULT_MAX_RECORD_BYTES, value_name = "BYTES")]
    pub max_record_bytes: usize,

    /// Fraction (0..=1) of put/get/compute requests answered 500 with error kind `injected`.
    #[arg(long, env = "TENANT_APP_FAULT_ERROR_RATE", default_value_t = 0.0, value_parser = parse_fraction, value_name = "FRACTION")]
    pub fault_error_rate: f64,

    /// Fraction (0..=1) of put/get/compute requests that sleep `--fault-stall` before answering
    /// normally; disjoint from the error fraction (their sum must be at most 1).
    #[arg(long, env = "TENANT_APP_FAULT_STALL_RATE", default_value_t = 0.0, value_parser = parse_fraction, value_name = "FRACTION")]
    pub fault_stall_rate: f64,

    /// How long a stalled request sleeps (e.g. `5s`, `300ms`).
    #[arg(long, env = "TENANT_APP_FAULT_STALL", default_value = "5s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub fault_stall: Duration,

    /// Seed for the fault sequence, for reproducible runs [default: random].
    #[arg(long, env = "TENANT_APP_FAULT_SEED", value_name = "U64")]
    pub fault_seed: Option<u64>,
}

impl AppArgs {
    /// The handler configuration these options describe.
    pub fn config(&self) -> Config {
        Config {
            hygiene: self.hygiene,
            tenant: self.tenant.clone(),
            tmp_dir: self.tmp_dir.clone(),
            faults: FaultConfig {
                error_rate: self.fault_error_rate,
                stall_rate: self.fault_stall_rate,
                stall: self.fault_stall,
                seed: self.fault_seed,
            },
            max_record_bytes: self.max_record_bytes,
        }
    }
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("`{s}` is not a fraction between 0 and 1")),
    }
}

/// Logs go to stderr (stdout carries the `listening on` line); `RUST_LOG` filters, `info` by default.
pub fn init_logging() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("tenant-app").chain(args.iter().copied())).map(Cli::into_command)
    }

    fn serve_args(args: &[&str]) -> ServeArgs {
        match command(args).unwrap() {
            Command::Serve(a) => a,
        }
    }

    #[test]
    fn serve_is_the_default() {
        let bare = serve_args(&[]);
        assert_eq!(bare.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(bare.app.hygiene, Hygiene::Scoped);
        assert_eq!(bare.app.tmp_dir, PathBuf::from("/tmp"));
        let top = serve_args(&["--listen", "127.0.0.1:0", "--hygiene", "naive", "--tenant", "acme"]);
        let sub = serve_args(&["serve", "--listen", "127.0.0.1:0", "--hygiene", "naive", "--tenant", "acme"]);
        for a in [top, sub] {
            assert_eq!(a.listen, "127.0.0.1:0".parse().unwrap());
            assert_eq!(a.app.hygiene, Hygiene::Naive);
            assert_eq!(a.app.tenant.as_deref(), Some("acme"));
        }
    }

    #[test]
    fn fault_flags() {
        let a = serve_args(&[
            "--fault-error-rate",
            "0.25",
            "--fault-stall-rate",
            "0.5",
            "--fault-stall",
            "300ms",
            "--fault-seed",
            "9",
        ]);
        let f = a.app.config().faults;
        assert_eq!((f.error_rate, f.stall_rate, f.stall, f.seed), (0.25, 0.5, Duration::from_millis(300), Some(9)));
        assert!(command(&["--fault-error-rate", "1.5"]).is_err());
        assert!(command(&["--fault-stall", "soon"]).is_err());
    }

    #[test]
    fn rejects_bad_tenant_and_mixing_top_level_options_with_a_subcommand() {
        assert!(command(&["--tenant", "Not_Valid"]).is_err());
        assert!(command(&["--hygiene", "sloppy"]).is_err());
        assert!(command(&["--listen", "127.0.0.1:0", "serve"]).is_err());
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
