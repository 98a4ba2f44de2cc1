//! Command-line interface.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "isobench",
    version = isobench_runner::VERSION,
    about = "Measures how well AWS compute isolation models keep tenants apart, and what each costs",
    after_help = EXIT_CODES_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log filter for diagnostics on stderr (e.g. `info`, `isobench_local=debug`).
    #[arg(long, global = true, env = "ISOBENCH_LOG", default_value = "warn")]
    pub log: String,
}

const EXIT_CODES_HELP: &str = "Exit codes: 0 success, 1 internal error, 2 bad input, 3 deploy failure, \
4 resources left behind, 5 regression, 6 unexpected leak, 7 inconclusive probe, 8 backend unavailable, \
9 error budget exhausted, 10 guard rail exceeded, 130 interrupted.";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Deploy every tier of a scenario, drive traffic, tear down and write results.
    Run(RunArgs),
    /// Check a scenario and print the plan without deploying anything.
    Validate(ValidateArgs),
    /// Find and remove what a crashed run left on this host (namespaces' processes, cgroups, locks),
    /// or in the AWS account (`--target aws`, found by tag).
    Sweep(SweepArgs),
    /// Re-render `report.md`, `report.html` (and `junit.xml` when probes ran) of a results directory
    /// from its `summary.json` and `histograms.hlog`; deploys nothing.
    Report(ReportArgs),
    /// Compare a run with a baseline for CI: a Markdown diff on stdout, exit 5 on a regression.
    Compare(crate::compare::CompareArgs),
    /// List every resource a run would create on AWS, its projected cost, and check the guard rails.
    Plan(PlanArgs),
    /// Run a scenario over a matrix of tenant counts and rates (`--vary` or its `[explore]`
    /// section), one results directory per point, and say where the tiers' costs cross.
    /// Re-running the same command with the same `--out` resumes an interrupted sweep.
    Explore(ExploreArgs),
    /// Run as a load agent: read one assignment (a share of a run's schedule and its targets)
    /// as JSON, drive it, and write newline-delimited JSON messages to stdout (`Hello`,
    /// `Interval`s, then `Final` or `Failed`). Started by `isobench run --agents N`.
    Agent(AgentArgs),
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Read the assignment from this file instead of stdin.
    #[arg(long, value_name = "FILE")]
    pub assignment: Option<PathBuf>,
}

/// Where AWS credentials and endpoints come from: the SDK's default chain (environment,
/// `~/.aws` profiles, SSO, instance roles), this flag on top (the region is `--region`), and `AWS_ENDPOINT_URL` /
/// `AWS_ENDPOINT_URL_<SERVICE>` for emulators.
#[derive(Debug, Clone, Args, Default)]
pub struct AwsArgs {
    /// AWS profile from ~/.aws/config (default: AWS_PROFILE, else `default`). Only with `--target aws`.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// The local emulator on Linux namespaces and cgroups (needs root).
    Local,
    /// Real AWS through the official SDKs (built with `--features aws`).
    Aws,
    /// Endpoints deployed outside the harness, named in an `--endpoints` file; nothing is
    /// deployed or torn down.
    Endpoints,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario file.
    #[arg(default_value = "scenarios/quick.toml")]
    pub scenario: PathBuf,
    /// Where to deploy.
    #[arg(long, value_enum, default_value_t = Target::Local)]
    pub target: Target,
    /// With `--target endpoints`: TOML file naming each tier's and tenant's base URL
    /// (`http://host:port`); see the README.
    #[arg(long, value_name = "FILE", required_if_eq("target", "endpoints"))]
    pub endpoints: Option<PathBuf>,
    /// Results directory [default: results/<run-id>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seed for the arrival schedule (overrides the scenario's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Traffic time per tier, with a unit (e.g. `30s`, `2m`).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Requests per second per tier, all tenants together (e.g. `2000`, `10k`).
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Only these tiers of the scenario (comma-separated ids).
    #[arg(long, value_delimiter = ',')]
    pub tiers: Vec<String>,
    /// Plain progress lines even on a terminal.
    #[arg(long)]
    pub no_progress_bar: bool,
    /// Drive each HTTP tier's traffic with N load agents (`isobench agent` processes, each in
    /// a network namespace of its own, each sending every Nth request of the seeded schedule),
    /// merged exactly into one summary. Local target only; function (Lambda) tiers stay in
    /// this process. Default: no agents, the harness drives the traffic itself.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub agents: Option<u32>,
    /// The isobench the AWS load agents run (`[aws.agents]`): a static Linux executable with
    /// the `aws` feature for the agents' architecture. Default: this executable, if it is one.
    #[arg(long, value_name = "FILE")]
    pub agent_binary: Option<PathBuf>,
    #[command(flatten)]
    pub pricing: PricingArgs,
    /// Published AWS overheads (TOML, format in harness/cost/overheads/aws.toml) for the
    /// calibration profile and the projected-AWS latency; merged entry by entry over the built-in file.
    #[arg(long, value_name = "FILE")]
    pub overheads: Option<PathBuf>,
    #[command(flatten)]
    pub aws: AwsArgs,
    /// A prebuilt workload binary for the scenario's architecture, instead of building
    /// `tenant-app` for it (`--target aws` only).
    #[arg(long, value_name = "PATH", env = "ISOBENCH_AWS_WORKLOAD")]
    pub workload_binary: Option<PathBuf>,
}

/// Where the prices of the cost model come from (and, for `--target aws`, the region).
#[derive(Debug, Clone, Default, Args)]
pub struct PricingArgs {
    /// Pricing table (TOML, format in harness/cost/pricing/us-east-1.toml); merged price by price over the
    /// built-in table of its region, or standing alone for a region without one.
    #[arg(long, value_name = "FILE")]
    pub pricing: Option<PathBuf>,
    /// AWS region: its prices [default: us-east-1, or the --pricing file's region] and, with
    /// `--target aws`, where to deploy [default: the scenario's [aws] region, else AWS_REGION or the profile's].
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Scenario file.
    #[arg(default_value = "scenarios/quick.toml")]
    pub scenario: PathBuf,
    /// Where the run would deploy (only `aws` has a plan).
    #[arg(long, value_enum, default_value_t = Target::Aws)]
    pub target: Target,
    /// Only these tiers of the scenario (comma-separated ids).
    #[arg(long, value_delimiter = ',')]
    pub tiers: Vec<String>,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub pricing: PricingArgs,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario file.
    #[arg(default_value = "scenarios/quick.toml")]
    pub scenario: PathBuf,
    #[command(flatten)]
    pub pricing: PricingArgs,
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Where to sweep.
    #[arg(long, value_enum, default_value_t = Target::Local)]
    pub target: Target,
    /// List what would be removed, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Only this run's resources (AWS: default is every expired resource of the tool).
    #[arg(long, value_name = "RUN_ID")]
    pub run: Option<String>,
    /// Also remove runs whose harness still holds its lock (a live run). Local target only.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub aws: AwsArgs,
    /// AWS region to sweep (default: AWS_REGION or the profile's). Only with `--target aws`.
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExploreArgs {
    /// Scenario file.
    pub scenario: PathBuf,
    /// A dimension and its values: `tenants=2,8,32` or `rate=100,1k` (units as everywhere); one
    /// flag per dimension. Replaces the scenario's `[explore]` section as a whole.
    #[arg(long, value_name = "DIM=V1,V2,..")]
    pub vary: Vec<String>,
    /// Where to deploy each point.
    #[arg(long, value_enum, default_value_t = Target::Local)]
    pub target: Target,
    /// With `--target endpoints`: the endpoints file (see `run`).
    #[arg(long, value_name = "FILE", required_if_eq("target", "endpoints"))]
    pub endpoints: Option<PathBuf>,
    /// Sweep directory [default: results/explore-<id>]. The directory of an interrupted sweep
    /// of the same scenario and matrix resumes it: finished points are kept, the others redone.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Only these tiers of the scenario (comma-separated ids).
    #[arg(long, value_delimiter = ',')]
    pub tiers: Vec<String>,
    /// Plain progress lines even on a terminal.
    #[arg(long)]
    pub no_progress_bar: bool,
    #[command(flatten)]
    pub pricing: PricingArgs,
    /// Published AWS overheads for each point's projected-AWS latency (see `run`).
    #[arg(long, value_name = "FILE")]
    pub overheads: Option<PathBuf>,
    #[command(flatten)]
    pub aws: AwsArgs,
    /// A prebuilt workload binary (`--target aws` only; see `run`).
    #[arg(long, value_name = "PATH", env = "ISOBENCH_AWS_WORKLOAD")]
    pub workload_binary: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Results directory of a run (holds `summary.json`, and `histograms.hlog` for full latency curves).
    pub dir: PathBuf,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    isobench_core::units::parse_duration(s).map_err(|e| e.to_string())
}

fn parse_rate(s: &str) -> Result<f64, String> {
    isobench_core::units::parse_rate(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn help_names_every_exit_code() {
        for (code, _) in isobench_results::exit::ALL {
            assert!(super::EXIT_CODES_HELP.contains(&format!("{code} ")), "--help does not name exit code {code}");
        }
    }
}
