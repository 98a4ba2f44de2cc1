//! `isobench compare BASE NEW`: a run against a baseline, as CI reads it. Prints the Markdown
//! diff of `isobench_report::compare` and fails with exit 5 on a regression, or exit 2 when an
//! input cannot be read or compared. The flags override the thresholds file's `[default]`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use isobench_report::compare::{
    ThresholdOverrides, ThresholdSet, compare, markdown, parse_percent, read_summary, thresholds as thresholds_from,
};

use crate::errors::CliError;
use crate::output::out;

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline: a results directory or its summary.json.
    pub base: PathBuf,
    /// The run to check: a results directory or its summary.json.
    pub new: PathBuf,
    /// Most a tier's corrected p99 may grow, in percent (e.g. `10%`) [default: 10%].
    #[arg(long, value_parser = parse_percent, value_name = "PERCENT")]
    pub max_p99_increase: Option<f64>,
    /// Most a tier's corrected p99.9 may grow, in percent [default: 20%].
    #[arg(long, value_parser = parse_percent, value_name = "PERCENT")]
    pub max_p999_increase: Option<f64>,
    /// Most a tier's throughput (ok requests per second) may drop, in percent [default: 5%].
    #[arg(long, value_parser = parse_percent, value_name = "PERCENT")]
    pub max_throughput_drop: Option<f64>,
    /// Most a tier's modelled cost (monthly and per million requests) may grow, in percent [default: 10%].
    #[arg(long, value_parser = parse_percent, value_name = "PERCENT")]
    pub max_cost_increase: Option<f64>,
    /// Most of NEW's sent requests per tier that may end in an error, in percent [default: 1%].
    #[arg(long, value_parser = parse_percent, value_name = "PERCENT")]
    pub max_error_share: Option<f64>,
    /// Most of NEW's sent requests per tier that may time out, in percent [default: 1%].
    #[arg(long, value_parser = parse_percent, value_name = "PERCENT")]
    pub max_timeout_share: Option<f64>,
    /// Compare runs of a changed scenario file (different sha256) instead of failing.
    #[arg(long)]
    pub allow_scenario_change: bool,
    /// Latency changes smaller than this never fail, with a unit (e.g. `50us`) [default: 50us].
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub min_latency_change: Option<Duration>,
    /// Thresholds file (TOML: `format_version = 1`, `[default]` and `[tier.<id>]` tables with the
    /// flags' names in snake_case).
    #[arg(long, value_name = "FILE")]
    pub thresholds: Option<PathBuf>,
    /// Also write the Markdown diff to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    isobench_core::units::parse_duration(s).map_err(|e| e.to_string())
}

/// The thresholds of the file (if any) and the flags.
pub fn thresholds(a: &CompareArgs) -> Result<ThresholdSet, CliError> {
    let flags = ThresholdOverrides {
        p99_increase: a.max_p99_increase,
        p999_increase: a.max_p999_increase,
        throughput_drop: a.max_throughput_drop,
        cost_increase: a.max_cost_increase,
        min_latency_change: a.min_latency_change,
        error_share: a.max_error_share,
        timeout_share: a.max_timeout_share,
    };
    let th = thresholds_from(a.thresholds.as_deref(), &flags)
        .map_err(|e| CliError::BadInput(format!("--thresholds {e}")))?;
    Ok(ThresholdSet { allow_scenario_change: a.allow_scenario_change, ..th })
}

/// `isobench compare`.
pub fn run(a: CompareArgs) -> Result<i32, CliError> {
    let th = thresholds(&a)?;
    let bad = |e: isobench_report::InputError| CliError::BadInput(e.to_string());
    let base = read_summary(&a.base).map_err(bad)?;
    let new = read_summary(&a.new).map_err(bad)?;
    let c = compare(&base, &new, &th);
    let md = markdown(&c, &base, &new, &a.base, &a.new);
    out(format_args!("{md}"));
    if let Some(p) = &a.out {
        std::fs::write(p, &md)
            .map_err(|e| CliError::Internal(anyhow::anyhow!("failed to write {}: {e}", p.display())))?;
    }
    if c.failures.is_empty() { Ok(0) } else { Err(CliError::Regression(c.failures)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(flags: &[&str]) -> CompareArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            a: CompareArgs,
        }
        let mut argv = vec!["compare", "b", "n"];
        argv.extend_from_slice(flags);
        Cli::parse_from(argv).a
    }

    #[test]
    fn flags_become_thresholds() {
        let th = thresholds(&args(&["--max-p99-increase", "20%", "--min-latency-change", "1ms"])).unwrap();
        assert_eq!(th.default.p99_increase, 0.2);
        assert_eq!(th.default.min_latency_change_us, 1000.0);
        assert_eq!(th.default.p999_increase, isobench_report::compare::Thresholds::default().p999_increase);
    }

    #[test]
    fn a_bad_file_names_the_flag() {
        let err = thresholds(&args(&["--thresholds", "/does/not/exist.toml"])).unwrap_err().to_string();
        assert!(err.starts_with("--thresholds /does/not/exist.toml: cannot read the file"), "{err}");
    }
}
