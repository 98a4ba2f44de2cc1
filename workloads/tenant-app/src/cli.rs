//! Command line and environment configuration.
//!
//! Without a subcommand, `tenant-app` serves HTTP (`tenant-app --listen ...` works and a bare
//! `tenant-app` serves on the defaults) — unless `AWS_LAMBDA_RUNTIME_API` is set, which is how
//! Lambda starts a `bootstrap`: then it runs `lambda`. Options every front end shares live in
//! [`AppArgs`], and every option has a `TENANT_APP_*` variable, because on Lambda configuration
//! arrives as environment variables.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::fault::FaultConfig;
use crate::handler::{Config, DEFAULT_MAX_RECORD_BYTES};
use crate::ids::parse_tenant;
use crate::lambda_env::{self, RUNTIME_API_ENV};
use crate::probe::{self, ProbeConfig, client::Endpoint};
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
    /// Serve the HTTP/1.1 API (the default when no subcommand is given, outside Lambda).
    Serve(ServeArgs),
    /// Run as a Lambda function's runtime (the `bootstrap` of `provided.al2023`): take events
    /// from the Runtime API at AWS_LAMBDA_RUNTIME_API, one at a time. The default when no
    /// subcommand is given and that variable is set.
    Lambda(LambdaArgs),
    /// Internal: a `proc` probe holder, started by this binary itself with `--probes`; holds
    /// the canary in its argv and environment until its parent dies.
    #[command(name = "probe-holder", hide = true)]
    ProbeHolder(HolderArgs),
}

/// Arguments of the hidden `probe-holder` subcommand.
#[derive(Debug, Clone, Args)]
pub struct HolderArgs {
    /// The canary to hold.
    #[arg(allow_hyphen_values = true)]
    pub canary: String,
}

/// Options of `serve` that mean nothing to `lambda`; naming one on the command line without a
/// subcommand while `AWS_LAMBDA_RUNTIME_API` is set is a usage error rather than ignored.
const SERVE_ONLY: &[&str] = &["listen", "workers", "shutdown_grace"];

impl Cli {
    /// The command to run: the one named; else `lambda` when started by Lambda (`in_lambda`:
    /// `AWS_LAMBDA_RUNTIME_API` is set), `serve` otherwise, with the top-level options.
    fn into_command(self, matches: &ArgMatches, in_lambda: bool) -> Result<Command, clap::Error> {
        match self.command {
            Some(command) => Ok(command),
            None if in_lambda => {
                if let Some(id) =
                    SERVE_ONLY.iter().find(|id| matches.value_source(id) == Some(ValueSource::CommandLine))
                {
                    let flag = id.replace('_', "-");
                    return Err(Cli::command().error(
                        clap::error::ErrorKind::ArgumentConflict,
                        format!(
                            "--{flag} is an option of `serve`, but {} is set, so tenant-app runs as a Lambda \
                             runtime; name the `serve` subcommand to serve HTTP",
                            RUNTIME_API_ENV
                        ),
                    ));
                }
                Ok(Command::Lambda(LambdaArgs { app: self.serve.app }))
            }
            None => Ok(Command::Serve(self.serve)),
        }
    }
}

/// Parses `args` (and `TENANT_APP_*` variables) into a command; `in_lambda` says whether
/// `AWS_LAMBDA_RUNTIME_API` is set.
pub fn try_parse_from<I, T>(args: I, in_lambda: bool) -> Result<Command, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut command = Cli::command();
    let matches = command.try_get_matches_from_mut(args)?;
    let cli = Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut command))?;
    cli.into_command(&matches, in_lambda)
}

/// Parses the process's arguments (and `TENANT_APP_*` variables) into a command; on bad input
/// prints the usage error and exits 2, after handing it to `report_in_lambda` when started by
/// Lambda (`main` passes [`crate::lambda::report_usage_error`], which posts it to
/// `/runtime/init/error`).
pub fn parse(report_in_lambda: impl FnOnce(&str)) -> Command {
    let in_lambda = lambda_env::in_lambda();
    try_parse_from(std::env::args_os(), in_lambda).unwrap_or_else(|e| {
        // `--help` and `--version` come here too, on stdout; they are no failure.
        if in_lambda && e.use_stderr() {
            report_in_lambda(&e.to_string());
        }
        e.exit()
    })
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

/// Options of the Lambda runtime: only the shared ones. A Lambda environment has no inbound
/// network and runs one invocation at a time, so there is nothing to listen on and no worker
/// pool to size.
#[derive(Debug, Clone, Args)]
pub struct LambdaArgs {
    #[command(flatten)]
    pub app: AppArgs,
}

/// Options of the tenant logic, shared by every front end.
#[derive(Debug, Clone, Args)]
pub struct AppArgs {
    /// Serve only this tenant (a silo instance, a function dedicated to one tenant); requests for
    /// any other tenant get 403.
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

    /// Fraction (0..=1) of put/get/compute requests answered 200 with the `injected` error
    /// document as the body; disjoint from the other fault fractions.
    #[arg(long, env = "TENANT_APP_FAULT_ERROR_BODY_RATE", default_value_t = 0.0, value_parser = parse_fraction, value_name = "FRACTION")]
    pub fault_error_body_rate: f64,

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

    /// Enable the probe agent: operations that act as a compromised tenant would (plant and
    /// sweep canaries in /tmp, memory, the environment, descriptors, /proc, the network; look for
    /// credentials). Off by default, when its routes do not exist. The variable takes 1/0,
    /// true/false, yes/no, on/off.
    #[arg(long, env = "TENANT_APP_PROBES", value_parser = BoolishValueParser::new())]
    pub probes: bool,

    /// Test/emulator override: base URL of the ECS task credentials endpoint the `cred` probe
    /// asks: http://IP or http://IP:PORT.
    #[arg(long, env = "TENANT_APP_PROBE_ECS_ENDPOINT", default_value = probe::cred::ECS_ENDPOINT, value_name = "URL")]
    pub probe_ecs_endpoint: Endpoint,

    /// Test/emulator override: base URL of the instance metadata service the `cred` probe
    /// asks: http://IP or http://IP:PORT.
    #[arg(long, env = "TENANT_APP_PROBE_IMDS_ENDPOINT", default_value = probe::cred::IMDS_ENDPOINT, value_name = "URL")]
    pub probe_imds_endpoint: Endpoint,
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
                error_body_rate: self.fault_error_body_rate,
                stall_rate: self.fault_stall_rate,
                stall: self.fault_stall,
                seed: self.fault_seed,
            },
            max_record_bytes: self.max_record_bytes,
            probes: ProbeConfig {
                enabled: self.probes,
                ecs_endpoint: self.probe_ecs_endpoint,
                imds_endpoint: self.probe_imds_endpoint,
            },
        }
    }
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("`{s}` is not a fraction between 0 and 1")),
    }
}

/// Logs go to stderr (stdout carries the `listening on` line; on Lambda both reach CloudWatch);
/// `RUST_LOG` filters, `info` by default.
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

    fn parse_in(in_lambda: bool, args: &[&str]) -> Result<Command, clap::Error> {
        try_parse_from(std::iter::once("tenant-app").chain(args.iter().copied()), in_lambda)
    }

    fn command(args: &[&str]) -> Result<Command, clap::Error> {
        parse_in(false, args)
    }

    fn serve_args(args: &[&str]) -> ServeArgs {
        match command(args).unwrap() {
            Command::Serve(a) => a,
            other => panic!("not serve: {other:?}"),
        }
    }

    fn lambda_args(in_lambda: bool, args: &[&str]) -> LambdaArgs {
        match parse_in(in_lambda, args).unwrap() {
            Command::Lambda(a) => a,
            other => panic!("not lambda: {other:?}"),
        }
    }

    #[test]
    fn lambda_is_the_default_when_started_by_lambda() {
        let bare = lambda_args(true, &[]);
        assert_eq!((bare.app.hygiene, bare.app.tenant), (Hygiene::Scoped, None));
        let top = lambda_args(true, &["--hygiene", "naive", "--tenant", "acme", "--fault-error-rate", "0.5"]);
        let sub =
            lambda_args(false, &["lambda", "--hygiene", "naive", "--tenant", "acme", "--fault-error-rate", "0.5"]);
        for a in [top, sub] {
            assert_eq!((a.app.hygiene, a.app.tenant.as_deref()), (Hygiene::Naive, Some("acme")));
            assert_eq!(a.app.config().faults.error_rate, 0.5);
        }
        // `serve` named explicitly still serves, and `lambda` outside Lambda is still `lambda`.
        assert!(matches!(parse_in(true, &["serve"]).unwrap(), Command::Serve(_)));
        assert!(matches!(parse_in(false, &["lambda"]).unwrap(), Command::Lambda(_)));
    }

    #[test]
    fn serve_only_options_are_refused_in_lambda_mode() {
        for args in [&["--listen", "127.0.0.1:0"][..], &["--workers", "2"], &["--shutdown-grace", "1s"]] {
            let err = parse_in(true, args).unwrap_err();
            assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict, "{args:?}");
            assert!(err.to_string().contains(&format!("{} is an option of `serve`", args[0])), "{err}");
            assert!(matches!(parse_in(false, args).unwrap(), Command::Serve(_)), "{args:?}");
        }
        assert!(parse_in(false, &["lambda", "--listen", "127.0.0.1:0"]).is_err());
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
    fn probes_are_off_unless_enabled_by_flag_or_variable() {
        let off = serve_args(&[]).app.config().probes;
        assert!(!off.enabled);
        assert_eq!(off.ecs_endpoint.to_string(), "http://169.254.170.2");
        assert_eq!(off.imds_endpoint.to_string(), "http://169.254.169.254");
        assert!(serve_args(&["--probes"]).app.config().probes.enabled);
        assert!(lambda_args(false, &["lambda", "--probes"]).app.probes);
        let endpoints = serve_args(&[
            "--probe-ecs-endpoint",
            "http://127.0.0.1:9",
            "--probe-imds-endpoint",
            "http://127.0.0.1:10/",
        ])
        .app
        .config()
        .probes;
        assert_eq!((endpoints.ecs_endpoint.addr.port(), endpoints.imds_endpoint.addr.port()), (9, 10));
        assert!(command(&["--probe-imds-endpoint", "http://metadata.internal"]).is_err());
        assert!(command(&["--probes=maybe"]).is_err());
    }

    #[test]
    fn the_holder_subcommand_is_hidden_but_parses() {
        match command(&["probe-holder", "isobench-canary:v1:x"]).unwrap() {
            Command::ProbeHolder(args) => assert_eq!(args.canary, "isobench-canary:v1:x"),
            other => panic!("not the holder: {other:?}"),
        }
        let help = Cli::command().render_help().to_string();
        assert!(!help.contains("probe-holder"), "{help}");
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
