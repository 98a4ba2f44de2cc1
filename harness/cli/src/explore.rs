//! `isobench explore`: from the flags to a prepared sweep, a backend per point, progress, and
//! the sweep's outcome to an exit code. The loop, resume and crossovers are `isobench-explore`'s.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use isobench_core::Backend;
use isobench_core::plan::{Overrides, Plan};
use isobench_core::scenario;
use isobench_explore::{ExploreError, Matrix};
use isobench_results::BackendSummary;
use isobench_runner::{Ending, Observer};

use crate::args::{ExploreArgs, RunArgs, Target};
use crate::errors::CliError;
use crate::output::outln;
use crate::plan::{check_prices, load_pricing, load_scenario, select_tiers};
use crate::progress::Progress;
use crate::target::{backend_summary, make_backend};

pub fn explore(a: ExploreArgs) -> Result<i32, CliError> {
    let (scenario, src) = load_scenario(&a.scenario)?;
    let matrix = Matrix::resolve(&a.vary, &scenario, &src).map_err(from_explore)?;
    let mut plan = Plan::new("{run}".into(), scenario.clone(), scenario::hash(&src), &Overrides::default());
    select_tiers(&mut plan, &a.tiers, &a.scenario)?;
    #[cfg(feature = "aws")]
    if a.target == Target::Aws {
        crate::aws::check_supported(&plan, &src, &a.scenario)?;
    }
    check_target(&a)?;
    let pricing = load_pricing(&a.pricing)?;
    check_prices(&plan, &pricing)?;
    let overheads =
        isobench_cost::Overheads::load(a.overheads.as_deref()).map_err(|e| CliError::BadInput(e.to_string()))?;
    let tiers: Vec<String> = plan.tiers.iter().map(|t| t.name.clone()).collect();
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("results").join(format!("explore-{}", isobench_runner::new_run_id())));
    let cancel = crate::signals::install()
        .map_err(|e| CliError::Internal(anyhow::Error::new(e).context("failed to install signal handlers")))?;
    let sweep = isobench_explore::prepare(
        out,
        a.scenario.clone(),
        &scenario,
        &src,
        matrix,
        tiers,
        target_name(a.target).into(),
        pricing,
        overheads,
        cancel.clone(),
    )
    .map_err(from_explore)?;
    let mut hooks = CliHooks { run: run_args(&a), progress: Progress::new(a.no_progress_bar), error: None };
    let outcome = isobench_explore::run(&sweep, &mut hooks).map_err(from_explore)?;
    if let Some(e) = hooks.error {
        return Err(e);
    }
    let s = &outcome.summary;
    outln!("crossovers (modelled):");
    if s.crossovers.is_empty() {
        outln!("  none within the range sampled");
    }
    for c in &s.crossovers {
        outln!("  {}", c.sentence);
    }
    let done = s.points.iter().filter(|p| p.status == isobench_results::sweep::PointStatus::Complete).count();
    outln!("points: {done} of {} finished", s.points.len());
    outln!("sweep: {}", sweep.out.display());
    if outcome.stopped && cancel.load(Ordering::SeqCst) {
        outln!("interrupted: run the same command again to resume");
        return Err(CliError::Interrupted);
    }
    if let Some(e) = &s.error
        && outcome.stopped
    {
        return Err(CliError::Internal(anyhow::anyhow!("{e}")));
    }
    for (key, ending) in outcome.endings {
        if !matches!(ending, Ending::Complete) {
            return CliError::from_ending(ending).map_err(|e| prefix(&key, e));
        }
    }
    Ok(0)
}

/// `isobench report DIR` on a sweep directory.
pub fn report(dir: &std::path::Path) -> Result<i32, CliError> {
    isobench_explore::rerender(dir).map_err(from_explore)?;
    outln!("wrote {}, {}", dir.join("report.md").display(), dir.join("report.html").display());
    Ok(0)
}

/// Refuses a target this build or host cannot use before the sweep's directory is made (each
/// point's backend checks the rest).
fn check_target(a: &ExploreArgs) -> Result<(), CliError> {
    if a.endpoints.is_some() && a.target != Target::Endpoints {
        return Err(CliError::BadInput("--endpoints is only used with --target endpoints".into()));
    }
    #[cfg(not(feature = "aws"))]
    if a.target == Target::Aws {
        return Err(CliError::BadInput(crate::target::aws_unavailable()));
    }
    #[cfg(target_os = "linux")]
    if a.target == Target::Local {
        isobench_local::check_privileges()
            .map_err(|why| CliError::Unavailable(format!("the local emulator cannot run: {why}")))?;
    }
    Ok(())
}

fn target_name(t: Target) -> &'static str {
    match t {
        Target::Local => "local",
        Target::Aws => "aws",
        Target::Endpoints => "endpoints",
    }
}

/// The `run` flags a point's backend is made from.
fn run_args(a: &ExploreArgs) -> RunArgs {
    RunArgs {
        scenario: a.scenario.clone(),
        target: a.target,
        endpoints: a.endpoints.clone(),
        out: None,
        seed: None,
        duration: None,
        rate: None,
        tiers: a.tiers.clone(),
        no_progress_bar: a.no_progress_bar,
        agents: None,
        agent_binary: None,
        pricing: a.pricing.clone(),
        overheads: a.overheads.clone(),
        aws: a.aws.clone(),
        workload_binary: a.workload_binary.clone(),
    }
}

fn from_explore(e: ExploreError) -> CliError {
    match e {
        ExploreError::BadInput(m) => CliError::BadInput(m),
        ExploreError::Run { key, source } => prefix(&key, CliError::from_run(source)),
        e => CliError::Internal(e.into()),
    }
}

/// Names the point in an error that has a message of its own.
fn prefix(key: &str, e: CliError) -> CliError {
    match e {
        CliError::BadInput(m) => CliError::BadInput(format!("point {key}: {m}")),
        CliError::Unavailable(m) => CliError::Unavailable(format!("point {key}: {m}")),
        CliError::ErrorBudget(m) => CliError::ErrorBudget(format!("point {key}: {m}")),
        e => e,
    }
}

struct CliHooks {
    run: RunArgs,
    progress: Progress,
    /// The backend error that stopped the sweep, kept for its exit code.
    error: Option<CliError>,
}

impl isobench_explore::Hooks for CliHooks {
    fn backend(&mut self, plan: &Plan) -> Result<(Box<dyn Backend>, BackendSummary), String> {
        match make_backend(&self.run, plan) {
            Ok(b) => {
                let summary = backend_summary(self.run.target, &b.info());
                Ok((b, summary))
            }
            Err(e) => {
                let text = e.to_string();
                self.error = Some(e);
                Err(text)
            }
        }
    }

    fn observer(&mut self) -> &mut dyn Observer {
        &mut self.progress
    }

    fn progress(&mut self, line: &str) {
        self.progress.line(line);
    }
}
