//! `isobench sweep`: remove what a crashed run left, found by enumerating the host.

use crate::args::{SweepArgs, Target};
use crate::errors::CliError;

pub fn sweep(a: SweepArgs) -> Result<i32, CliError> {
    match a.target {
        Target::Local => local(a),
        Target::Aws => Err(CliError::BadInput(crate::run::aws_unavailable())),
        Target::Endpoints => {
            crate::outln!("nothing to sweep: the endpoints target deploys nothing");
            Ok(0)
        }
    }
}

#[cfg(target_os = "linux")]
fn local(a: SweepArgs) -> Result<i32, CliError> {
    let opts = isobench_local::SweepOptions { dry_run: a.dry_run, run: a.run.clone(), force: a.force };
    let report = isobench_local::sweep(&opts).map_err(|e| CliError::Internal(e.into()))?;
    let verb = if a.dry_run { "would remove" } else { "removed" };
    if report.found.is_empty() {
        crate::outln!("nothing to sweep");
    }
    for item in &report.found {
        crate::outln!("{verb} {item}");
    }
    for item in &report.skipped_live {
        crate::outln!("skipped live run {item} (use --force to remove it)");
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
    crate::outln!("nothing to sweep: the local emulator runs only on Linux");
    Ok(0)
}
