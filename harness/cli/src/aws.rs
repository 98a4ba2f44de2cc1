//! The CLI's side of the AWS backend: options, guard rails, `plan` and `sweep` (feature `aws`).

use std::path::Path;
use std::time::SystemTime;

use isobench_core::diagnostics::Checker;
use isobench_core::plan::Plan;

use crate::args::{AwsArgs, PlanArgs, SweepArgs};
use crate::errors::CliError;
use crate::output::outln;

pub fn options(a: &AwsArgs, region: Option<&String>) -> isobench_aws::AwsOptions {
    isobench_aws::AwsOptions { profile: a.profile.clone(), region: region.cloned() }
}

/// The projected cost of the run in dollars: the cost model's projection of every tier, summed
/// (for Lambda tiers an upper bound).
pub fn projected_cost(plan: &Plan, pricing: &isobench_cost::Pricing) -> Result<f64, CliError> {
    let tiers = isobench_cost::project(plan, pricing).map_err(|e| CliError::BadInput(e.to_string()))?;
    Ok(tiers.iter().map(|(_, p)| p.cost.run_usd).sum())
}

/// Aborts with exit 10 before anything is created when the plan exceeds a cap.
pub fn check_guard_rails(plan: &Plan, pricing: &isobench_cost::Pricing) -> Result<(), CliError> {
    let rails = isobench_aws::plan::check(plan, Some(projected_cost(plan, pricing)?));
    if rails.is_empty() {
        return Ok(());
    }
    Err(CliError::GuardRail(rails.iter().map(ToString::to_string).collect()))
}

/// Refuses, as bad input located in the scenario file, the settings of the plan's tiers that
/// the AWS backend does not implement: before any call to AWS.
pub fn check_supported(plan: &Plan, src: &str, path: &Path) -> Result<(), CliError> {
    let c = Checker { problems: isobench_aws::plan::refused(plan) };
    c.finish(src, "scenario for --target aws", path.to_path_buf()).map_err(|e| CliError::BadInput(e.to_string()))
}

pub fn plan(a: PlanArgs) -> Result<i32, CliError> {
    let (plan, src) = crate::plan::load_plan(&a.scenario, &a.tiers)?;
    check_supported(&plan, &src, &a.scenario)?;
    let aws = &plan.scenario.aws;
    let region =
        a.pricing.region.clone().or_else(|| aws.region.clone()).unwrap_or_else(|| "(from the SDK chain)".into());
    outln!(
        "plan for {} on AWS, region {region}, {} ({}), names shown with {{run}} for the run id",
        a.scenario.display(),
        aws.architecture.as_str(),
        aws.rust_target()
    );
    let mut last = None;
    for r in isobench_aws::plan::resources(&plan) {
        if last != Some(r.tier) {
            outln!("{}:", r.tier.map_or("shared by the run", |t| t.as_str()));
            last = Some(r.tier);
        }
        outln!("  {:<22} {}", r.kind, r.name);
    }
    for line in isobench_aws::plan::ignored(&plan) {
        outln!("ignored on AWS (they shape the local emulator only): {line}");
    }
    let c = isobench_aws::plan::counts(&plan);
    outln!(
        "compute: {} instance(s) (cap {}), {} task(s) (cap {}), {} function(s) (cap {})",
        c.instances,
        aws.max_instances,
        c.tasks,
        aws.max_tasks,
        c.functions,
        aws.max_functions
    );
    let pricing = crate::plan::load_pricing(&a.pricing)?;
    let usd = projected_cost(&plan, &pricing)?;
    outln!("projected cost of the run: ${usd:.4} (cap ${:.2}); modelled", aws.max_cost_usd);
    outln!(
        "lifetime: about {} (cap {}); every resource is tagged isobench:expires-at = start + {}",
        humantime::format_duration(isobench_aws::plan::projected_lifetime(&plan)),
        aws.max_lifetime,
        aws.max_lifetime
    );
    check_guard_rails(&plan, &pricing)?;
    outln!("guard rails: all within their caps");
    Ok(0)
}

/// The runs a sweep of the expired left in place, each with the command that removes it.
fn print_live(live: &[isobench_aws::sweep::LiveRun], now: SystemTime) {
    if live.is_empty() {
        return;
    }
    outln!("left in place, not expired ({} run(s)):", live.len());
    for run in live {
        outln!("  {}", run.describe(now));
        for r in &run.resources {
            outln!("    {r}");
        }
        outln!("  remove with: {}", run.command());
    }
}

pub fn sweep(a: SweepArgs) -> Result<i32, CliError> {
    if a.force {
        return Err(CliError::BadInput("--force applies to the local target only".into()));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::Internal(e.into()))?;
    let config = rt
        .block_on(isobench_aws::config::load(&options(&a.aws, a.region.as_ref())))
        .map_err(|e| CliError::BadInput(e.to_string()))?;
    let apis = isobench_aws::config::apis(&config);
    let caps = isobench_aws::Capabilities::detect();
    let now = SystemTime::now();
    let selector = match &a.run {
        Some(id) => isobench_aws::tags::Selector::Run(id.clone()),
        None => isobench_aws::tags::Selector::Expired(now),
    };
    let report = rt.block_on(isobench_aws::sweep::sweep(&apis, &caps, &selector, a.dry_run));
    for n in &report.notes {
        outln!("note: {n}");
    }
    if report.found.is_empty() {
        let what = if report.live.is_empty() { "" } else { " expired" };
        outln!("nothing{what} to sweep");
    }
    print_live(&report.live, now);
    let verb = if a.dry_run { "would remove" } else { "removed" };
    let listed = if a.dry_run { &report.found } else { &report.removed };
    for item in listed {
        outln!("{verb} {item}");
    }
    if !report.failed.is_empty() {
        for item in &report.failed {
            eprintln!("could not remove or list: {item}");
        }
        return Err(CliError::LeftBehind(report.failed));
    }
    Ok(0)
}
