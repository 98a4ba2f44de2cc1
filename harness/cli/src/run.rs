//! `isobench run` and `isobench validate`: from the flags to a plan and a backend, the engine
//! in between, and the outcome to an exit code.

use std::path::PathBuf;

use isobench_core::plan::{Overrides, Plan};
use isobench_core::scenario;
use isobench_runner::RunOptions;

use crate::args::{RunArgs, ValidateArgs};
use crate::errors::CliError;
use crate::output::{out, outln};
use crate::plan::{check_prices, load_pricing, load_scenario, select_tiers};
use crate::progress::Progress;
use crate::target::{backend_summary, make_backend};

pub fn validate(a: ValidateArgs) -> Result<i32, CliError> {
    let (scenario, src) = load_scenario(&a.scenario)?;
    let plan = Plan::new("validate".into(), scenario, scenario::hash(&src), &Overrides::default());
    let pricing = load_pricing(&a.pricing)?;
    let projected = check_prices(&plan, &pricing)?;
    out(format_args!("{}", isobench_runner::describe_plan(&a.scenario, &plan)));
    let rows: Vec<isobench_report::Projection<'_>> = projected
        .iter()
        .map(|(tier, p)| isobench_report::Projection { tier: tier.as_str(), cost: &p.cost, upper_bound: p.upper_bound })
        .collect();
    out(format_args!("{}", isobench_report::projected_costs(&rows, &pricing.info)));
    Ok(0)
}

/// Everything decided before anything is deployed; every check here exits with "bad input".
struct Prepared {
    plan: Plan,
    scenario_path: PathBuf,
    scenario_src: String,
    out: PathBuf,
    pricing: isobench_cost::Pricing,
    overheads: isobench_cost::Overheads,
}

fn prepare(a: &RunArgs) -> Result<Prepared, CliError> {
    let (scenario, src) = load_scenario(&a.scenario)?;
    let overrides = Overrides { seed: a.seed, duration: a.duration, rate: a.rate };
    Plan::check_overrides(&overrides).map_err(CliError::BadInput)?;
    let run_id = isobench_runner::new_run_id();
    let mut plan = Plan::new(run_id.clone(), scenario, scenario::hash(&src), &overrides);
    select_tiers(&mut plan, &a.tiers, &a.scenario)?;
    #[cfg(feature = "aws")]
    if a.target == crate::args::Target::Aws {
        crate::aws::check_supported(&plan, &src, &a.scenario)?;
    }
    let pricing = load_pricing(&a.pricing)?;
    check_prices(&plan, &pricing)?;
    let overheads =
        isobench_cost::Overheads::load(a.overheads.as_deref()).map_err(|e| CliError::BadInput(e.to_string()))?;
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("results").join(&run_id));
    if out.exists() && std::fs::read_dir(&out).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(CliError::BadInput(format!(
            "--out {}: the directory exists and is not empty; accepted: a new or empty directory",
            out.display()
        )));
    }
    Ok(Prepared { plan, scenario_path: a.scenario.clone(), scenario_src: src, out, pricing, overheads })
}

/// The traffic driver `--agents` asks for (`None`: the harness drives traffic itself).
fn agent_pool(a: &RunArgs) -> Result<Option<std::sync::Arc<dyn isobench_runner::TrafficDriver>>, CliError> {
    let Some(count) = a.agents else { return Ok(None) };
    if a.target != crate::args::Target::Local {
        return Err(CliError::BadInput("--agents: accepted with --target local only".into()));
    }
    #[cfg(target_os = "linux")]
    {
        let exe = std::env::current_exe()
            .map_err(|e| CliError::Internal(anyhow::Error::new(e).context("failed to find the isobench executable")))?;
        let pool = isobench_local::agent_pool::LocalAgents { count, exe };
        Ok(Some(std::sync::Arc::new(crate::agent::LocalPool(pool))))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = count;
        Err(CliError::BadInput("--agents: the local target runs on Linux only".into()))
    }
}

type Traffic = Option<std::sync::Arc<dyn isobench_runner::TrafficDriver>>;

/// The backend, and the AWS agents' driver in place of `traffic` when the scenario has
/// `[aws.agents]` on `--target aws`.
fn backend_and_traffic(
    a: &RunArgs,
    plan: &Plan,
    traffic: Traffic,
) -> Result<(Box<dyn isobench_core::Backend>, Traffic), CliError> {
    #[cfg(feature = "aws")]
    if a.target == crate::args::Target::Aws && plan.scenario.aws.agents.is_some() {
        let (b, t) = crate::aws::backend_with_agents(a, plan)?;
        return Ok((b, Some(t)));
    }
    Ok((make_backend(a, plan)?, traffic))
}

pub fn run(a: RunArgs) -> Result<i32, CliError> {
    let p = prepare(&a)?;
    let traffic = agent_pool(&a)?;
    let (mut backend, traffic) = backend_and_traffic(&a, &p.plan, traffic)?;
    let cancel = crate::signals::install()
        .map_err(|e| CliError::Internal(anyhow::Error::new(e).context("failed to install signal handlers")))?;
    let opts = RunOptions {
        out: p.out,
        scenario_path: p.scenario_path,
        scenario_source: p.scenario_src,
        pricing: p.pricing,
        overheads: p.overheads,
        backend: backend_summary(a.target, &backend.info()),
        cancel,
        traffic,
    };
    let mut progress = Progress::new(a.no_progress_bar);
    let outcome = isobench_runner::run(&p.plan, backend.as_mut(), &opts, &mut progress);
    drop(backend);
    let outcome = outcome.map_err(CliError::from_run)?;
    out(format_args!("{}", isobench_report::terminal_table(&outcome.summary)));
    out(format_args!("{}", isobench_report::cost_table(&outcome.summary)));
    out(format_args!("{}", isobench_report::projected_line(&outcome.summary)));
    outln!("results: {}", opts.out.display());
    // Last, so the run ends with the answer: the picks and the verdict table.
    out(format_args!("{}", isobench_report::terminal_verdict(&outcome.summary)));
    CliError::from_ending(outcome.ending)
}
