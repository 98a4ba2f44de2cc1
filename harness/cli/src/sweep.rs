//! `isobench sweep`: remove what a crashed run left, found by enumerating the host.

use crate::args::{SweepArgs, Target};
use crate::errors::CliError;
use crate::output::outln;

pub fn sweep(a: SweepArgs) -> Result<i32, CliError> {
    match a.target {
        Target::Local => local(a),
        Target::Aws => aws(a),
        Target::Endpoints => {
            outln!("nothing to sweep: the endpoints target deploys nothing");
            Ok(0)
        }
    }
}

#[cfg(feature = "aws")]
fn aws(a: SweepArgs) -> Result<i32, CliError> {
    crate::aws::sweep(a)
}

#[cfg(not(feature = "aws"))]
fn aws(_a: SweepArgs) -> Result<i32, CliError> {
    Err(CliError::BadInput(crate::target::aws_unavailable()))
}

/// `isobench plan`: only the AWS target has one.
pub fn plan(a: crate::args::PlanArgs) -> Result<i32, CliError> {
    if a.target != Target::Aws {
        return Err(CliError::BadInput(
            "plan: only `--target aws` has a plan; `isobench validate` shows the local emulator's".into(),
        ));
    }
    aws_plan(a)
}

#[cfg(feature = "aws")]
fn aws_plan(a: crate::args::PlanArgs) -> Result<i32, CliError> {
    crate::aws::plan(a)
}

#[cfg(not(feature = "aws"))]
fn aws_plan(_a: crate::args::PlanArgs) -> Result<i32, CliError> {
    Err(CliError::BadInput(crate::target::aws_unavailable().replace("--target aws", "plan --target aws")))
}

#[cfg(target_os = "linux")]
fn local(a: SweepArgs) -> Result<i32, CliError> {
    let opts = isobench_local::SweepOptions { dry_run: a.dry_run, run: a.run.clone(), force: a.force };
    let report = isobench_local::sweep(&opts).map_err(|e| CliError::Internal(e.into()))?;
    let verb = if a.dry_run { "would remove" } else { "removed" };
    if report.found.is_empty() {
        outln!("nothing to sweep");
    }
    for item in &report.found {
        outln!("{verb} {item}");
    }
    for item in &report.skipped_live {
        outln!("skipped live run {item} (use --force to remove it)");
    }
    if !report.failed.is_empty() {
        for item in &report.failed {
            eprintln!("could not remove {item}");
        }
        return Err(CliError::LeftBehind(report.failed));
    }
    Ok(0)
}

#[cfg(not(target_os = "linux"))]
fn local(_a: SweepArgs) -> Result<i32, CliError> {
    outln!("nothing to sweep: the local emulator runs only on Linux");
    Ok(0)
}
