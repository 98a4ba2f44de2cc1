//! One run, top to bottom: each tier deployed, driven with traffic (and probes beside it),
//! measured, torn down; teardown of everything on every path; then the summary, its cost and
//! the results directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use isobench_core::backend::{Fidelity, Phase};
use isobench_core::plan::{Plan, TierPlan};
use isobench_core::{Backend, BackendError, Deployment};
use isobench_load::LoadSpec;
use isobench_results::hlog::HlogWriter;
use isobench_results::{BackendSummary, PartialTier, RunStatus, Summary, TierSummary};

use crate::error::RunError;
use crate::observer::Observer;
use crate::outcome::{self, Ending, RunOutcome};
use crate::summarize::{add_to_log, probe_cells, tier_summary};
use crate::traffic::{Driven, InProcess, TrafficDriver, agent_lines};
use crate::{cost, hostinfo, noisy, usage};

/// What a run needs besides its plan and backend.
pub struct RunOptions {
    /// The results directory; created when missing.
    pub out: PathBuf,
    /// The scenario file and its text, recorded in the summary.
    pub scenario_path: PathBuf,
    pub scenario_source: String,
    /// Prices for the cost model; checked against the plan before the run (`isobench_cost::project`).
    pub pricing: isobench_cost::Pricing,
    /// Published AWS timings for the calibration profile and the projected-AWS latency (local
    /// runs); `isobench_cost::Overheads::built_in()` unless `--overheads FILE` says otherwise.
    pub overheads: isobench_cost::Overheads,
    /// How the summary names and describes the backend (the caller chose the target).
    pub backend: BackendSummary,
    /// Set by a signal to stop traffic early; the run still tears down and writes results.
    /// The run sets it too when a tier exhausts its error budget.
    pub cancel: Arc<AtomicBool>,
    /// How each tier's traffic is driven; `None` drives it in this process ([`InProcess`]).
    pub traffic: Option<Arc<dyn TrafficDriver>>,
}

/// Runs every tier of `plan` on `backend` and writes the results directory. Teardown runs on
/// every path, also after an error or a signal; the caller drops the backend afterwards.
///
/// `Err` only when there is no results directory to show (it could not be created or written);
/// every other ending is in [`RunOutcome::ending`], with the results written.
pub fn run(
    plan: &Plan,
    backend: &mut dyn Backend,
    opts: &RunOptions,
    observer: &mut dyn Observer,
) -> Result<RunOutcome, RunError> {
    std::fs::create_dir_all(&opts.out).map_err(|source| RunError::ResultsDir { path: opts.out.clone(), source })?;
    let started = SystemTime::now();
    let t0 = Instant::now();
    let load_at_start = hostinfo::load_average();
    let mut hlog = HlogWriter::new(started);
    let mut measured = Measured::default();
    let mut stop = Stop { cancel: &opts.cancel, budget_hit: None };
    let traffic: &dyn TrafficDriver = opts.traffic.as_deref().unwrap_or(&InProcess);
    let result = run_tiers(plan, backend, &opts.overheads, traffic, &mut stop, observer, &mut hlog, &mut measured);

    let mut left_behind = Vec::new();
    match backend.teardown_all() {
        Ok(r) => left_behind.extend(r.left_behind),
        Err(e) => left_behind.push(format!("teardown failed: {e}")),
    }

    let cancelled = opts.cancel.load(Ordering::SeqCst);
    let (status, error) = match &result {
        Ok(()) if stop.budget_hit.is_some() => (RunStatus::Failed, stop.budget_hit.clone()),
        Ok(()) if cancelled => (RunStatus::Interrupted, Some("interrupted by a signal".into())),
        Ok(()) => (RunStatus::Complete, None),
        Err(e) => (RunStatus::Failed, Some(e.with_causes())),
    };
    let mut summary = Summary {
        schema_version: isobench_results::SCHEMA_VERSION,
        run_id: plan.run_id.clone(),
        status,
        error,
        started_at: humantime::format_rfc3339_seconds(started).to_string(),
        wall_time_s: t0.elapsed().as_secs_f64(),
        tool: hostinfo::tool(),
        scenario: isobench_results::ScenarioInfo {
            name: plan.scenario.name.clone(),
            path: opts.scenario_path.display().to_string(),
            hash: plan.scenario_hash.clone(),
            source: opts.scenario_source.clone(),
            effective: serde_json::to_value(&plan.scenario)
                .map_err(|source| RunError::Serialise { what: "scenario", source })?,
        },
        host: isobench_results::HostInfo { load_at_start, ..hostinfo::host() },
        backend: opts.backend.clone(),
        tiers: measured.tiers,
        left_behind: left_behind.clone(),
        histograms: isobench_results::HISTOGRAMS_FILE.into(),
        pricing: None,
        harness: Some(usage::harness_usage()),
        partial_tiers: measured.partial,
        overheads: None,
        picks: plan.scenario.picks.map(|p| isobench_results::PickBounds {
            p99_us: p.p99.map(|d| d.0.as_nanos() as f64 / 1e3),
            budget_per_tenant_month_usd: p.budget.map(|b| b.0),
        }),
    };
    cost::fill(&mut summary, plan, &opts.pricing);
    cost::fill_projected(&mut summary, plan, &opts.overheads);
    let written = write_results(&opts.out, &summary, &hlog);
    observer.finish();
    written?;

    let ending = ending(&summary, result, stop.budget_hit, cancelled, left_behind);
    Ok(RunOutcome { summary, ending })
}

/// The first of the possible endings that holds.
fn ending(
    summary: &Summary,
    result: Result<(), RunError>,
    budget_hit: Option<String>,
    cancelled: bool,
    left_behind: Vec<String>,
) -> Ending {
    if let Err(e) = outcome::check_identity(summary) {
        return Ending::AccountingBroken(e);
    }
    let unexpected = outcome::unexpected_leaks(summary);
    let inconclusive = outcome::inconclusive(summary);
    match (result, budget_hit) {
        (Err(e), _) => failed(e, left_behind),
        (Ok(()), Some(why)) => Ending::ErrorBudget(why),
        _ if cancelled => Ending::Interrupted,
        _ if !left_behind.is_empty() => Ending::LeftBehind(left_behind),
        _ if !unexpected.is_empty() => Ending::UnexpectedLeak(unexpected),
        _ if !inconclusive.is_empty() => Ending::Inconclusive(inconclusive),
        _ => Ending::Complete,
    }
}

/// A failed deploy means everything was torn down (exit 3) only if teardown left nothing; a
/// resource whose create answer was lost may be left, and that is the more urgent news (exit 4).
fn failed(e: RunError, left_behind: Vec<String>) -> Ending {
    match e {
        RunError::Deploy { .. } if !left_behind.is_empty() => {
            tracing::error!("{e}");
            Ending::LeftBehind(left_behind)
        }
        e => Ending::Failed(e),
    }
}

/// What stops a run early: a signal, or a tier exhausting its error budget (which also sets
/// `cancel`, so everything that stops on a signal stops on it too).
struct Stop<'a> {
    cancel: &'a AtomicBool,
    budget_hit: Option<String>,
}

/// The tiers measured so far.
#[derive(Default)]
struct Measured {
    tiers: Vec<TierSummary>,
    partial: Vec<PartialTier>,
}

// The run's parts, each borrowed differently; a struct of them would only rename them.
#[allow(clippy::too_many_arguments)]
fn run_tiers(
    plan: &Plan,
    backend: &mut dyn Backend,
    overheads: &isobench_cost::Overheads,
    traffic: &dyn TrafficDriver,
    stop: &mut Stop<'_>,
    observer: &mut dyn Observer,
    hlog: &mut HlogWriter,
    out: &mut Measured,
) -> Result<(), RunError> {
    for tp in &plan.tiers {
        if stop.cancel.load(Ordering::SeqCst) {
            break;
        }
        observer.tier_deploying(&tp.name, tp.tenants.len());
        observer.line(&format!("[{}] deploying {} tenants", tp.name, tp.tenants.len()));
        let rss_before = usage::rss_bytes();
        let deploy_started = Instant::now();
        let deployment = backend.deploy(tp).map_err(|e| deploy_error(tp, e))?;
        let deploy_time = deploy_started.elapsed();
        let skipped = backend.skipped_phases(tp.tier);
        if !skipped.is_empty() {
            out.partial.push(partial_tier(backend, tp, &deployment, deploy_time, skipped, observer)?);
            continue;
        }
        let memory_after_deploy = backend.memory_in_use();
        let starts: Vec<f64> = deployment.instances.iter().map(|i| i.start_time.as_secs_f64() * 1e3).collect();
        observer.line(&format!(
            "[{}] {} instance(s) up; start time median {:.2} ms",
            tp.name,
            deployment.instances.len(),
            isobench_results::Spread::of(&starts).median
        ));
        let spec = load_spec(plan, tp);
        let (report, probe_report) = if stop.cancel.load(Ordering::SeqCst) {
            (None, None)
        } else {
            let unprobeable = backend.unprobeable();
            let (r, p) = traffic_and_probes(plan, tp, &spec, &deployment, &unprobeable, traffic, stop, observer);
            observer.phase_end();
            let r = r.map_err(|source| RunError::Traffic { tier: tp.name.clone(), source })?;
            let p = p.transpose().map_err(|source| RunError::Probes { tier: tp.name.clone(), source })?;
            (Some(r), p)
        };
        let memory_after_traffic = backend.memory_in_use();
        // Every environment started by the traffic, before anything else (noisy neighbour)
        // starts more.
        let inits = report.as_ref().and_then(|_| backend.inits(tp.tier));
        let rss_after_traffic = usage::rss_bytes();
        let noisy = match (&plan.scenario.noisy_neighbour, &report) {
            (Some(n), Some(_)) => noisy::measure(n, &spec, &deployment, stop.cancel, observer)
                .map_err(|source| RunError::NoisyNeighbour { tier: tp.name.clone(), source })?
                .map(|mut m| {
                    if matches!(backend.info().fidelity, Fidelity::Emulated | Fidelity::ProcessOnly) {
                        m.host_bound = Some(noisy::host_bound(&deployment, hostinfo::cpus()));
                    }
                    m
                }),
            _ => None,
        };
        observer.line(&format!("[{}] tearing down", tp.name));
        let teardown =
            backend.teardown(tp.tier).map_err(|source| RunError::Teardown { tier: tp.name.clone(), source })?;
        observer.line(&format!("[{}] torn down in {:.1} ms", tp.name, teardown.duration.as_secs_f64() * 1e3));
        if let Some(Driven { report, agents, .. }) = report {
            add_to_log(hlog, &tp.name, &report)?;
            let mut summary = tier_summary(tp, &spec, &report, &deployment, &teardown, inits.as_deref());
            summary.noisy_neighbour = noisy;
            if let Some(a) = &agents {
                agent_lines(&tp.name, a).iter().for_each(|l| observer.line(l));
            }
            summary.agents = agents;
            // Published AWS timings beside the emulator's own; the cloud is measured directly.
            if backend.info().fidelity != Fidelity::Cloud {
                summary.calibration =
                    cost::calibration(tp, summary.instance_start_ms, &report, inits.as_deref(), overheads);
            }
            summary.footprint = Some(footprint(
                &summary,
                deploy_time,
                [memory_after_deploy, memory_after_traffic],
                [rss_before, rss_after_traffic],
            ));
            observer.line(&footprint_line(&summary));
            if let Some(p) = &probe_report {
                summary.probes = probe_cells(p);
                for e in &p.errors {
                    observer.line(&format!("[{}] probe call failed: {e}", tp.name));
                }
            }
            out.tiers.push(summary);
        }
        if !teardown.left_behind.is_empty() {
            return Err(RunError::LeftBehind(teardown.left_behind));
        }
    }
    Ok(())
}

/// Phase times and memory per instance or environment of one tier.
fn footprint(
    t: &TierSummary,
    deploy: Duration,
    memory: [Option<u64>; 2],
    rss: [u64; 2],
) -> isobench_results::Footprint {
    // Lambda: the environments still held when traffic ended (the keep-alive may have reaped
    // some); the other tiers: their instances or tasks.
    let units = match &t.environments {
        Some(e) => e.frozen_at_end,
        None => t.instances.len() as u64,
    };
    isobench_results::Footprint {
        deploy_ms: deploy.as_secs_f64() * 1e3,
        traffic_s: t.duration_s,
        teardown_ms: t.teardown_ms,
        units,
        memory_after_deploy_bytes: memory[0],
        memory_after_traffic_bytes: memory[1],
        memory_per_unit_bytes: memory[1].filter(|_| units > 0).map(|m| m / units),
        harness_rss_before_bytes: rss[0],
        harness_rss_after_traffic_bytes: rss[1],
    }
}

/// One progress line on a tier's footprint.
fn footprint_line(t: &TierSummary) -> String {
    let Some(f) = &t.footprint else { return String::new() };
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    let per_unit = f.memory_per_unit_bytes.map_or("n/a".into(), |b| format!("{:.2} MiB", mib(b)));
    format!(
        "[{}] deploy {:.0} ms, traffic {:.1} s, teardown {:.0} ms; {} unit(s), {per_unit} each; harness RSS {:.0} -> {:.0} MiB",
        t.tier,
        f.deploy_ms,
        f.traffic_s,
        f.teardown_ms,
        f.units,
        mib(f.harness_rss_before_bytes),
        mib(f.harness_rss_after_traffic_bytes)
    )
}

type TrafficResult = Result<Driven, isobench_load::LoadError>;
type ProbeResult = Option<Result<isobench_probes::ProbeReport, isobench_probes::ProbeError>>;

/// Traffic on this thread and, when the scenario asks for them, probes beside it on another,
/// so probes meet environments in the state traffic leaves them in.
#[allow(clippy::too_many_arguments)]
fn traffic_and_probes(
    plan: &Plan,
    tp: &TierPlan,
    spec: &LoadSpec,
    d: &Deployment,
    unprobeable: &[(isobench_core::probes::Channel, &'static str)],
    traffic: &dyn TrafficDriver,
    stop: &mut Stop<'_>,
    observer: &mut dyn Observer,
) -> (TrafficResult, ProbeResult) {
    let cancel = stop.cancel;
    let probe_spec = plan.scenario.probes.as_ref().map(|p| isobench_probes::ProbeSpec {
        run_id: plan.run_id.clone(),
        tier: tp.tier,
        probes: isobench_probes::ProbeSpec::expectations(
            tp.tier,
            &tp.settings,
            &tp.workload,
            isobench_core::probes::CATALOGUE.iter().filter(|d| p.only.is_empty() || p.only.iter().any(|id| id == d.id)),
        ),
        trials: p.trials,
        seed: plan.scenario.run.seed,
        not_applicable: unprobeable.iter().map(|(c, why)| (*c, why.to_string())).collect(),
    });
    // A driver that runs the probes itself (in a load agent) reports them in `Driven`.
    let delegated = probe_spec.is_some() && traffic.runs_probes(d);
    std::thread::scope(|s| {
        let probes = probe_spec
            .as_ref()
            .filter(|_| !delegated)
            .map(|ps| s.spawn(move || isobench_probes::run(ps, &d.targets, d.netns.as_deref(), cancel)));
        let mut watch = isobench_load::BudgetWatch::new(&plan.scenario.run.error_budget);
        let budget_hit = &mut stop.budget_hit;
        let mut on_progress = |snap: &isobench_load::Snapshot| {
            observer.snapshot(&tp.name, snap);
            if budget_hit.is_none()
                && let Some(why) = watch.observe(snap)
            {
                observer.line(&format!("[{}] stopping: {why}", tp.name));
                *budget_hit = Some(format!("tier {}: {why}", tp.name));
                cancel.store(true, Ordering::SeqCst);
            }
        };
        let mut traffic = match probe_spec.as_ref().filter(|_| delegated) {
            Some(ps) => traffic.drive_with_probes(spec, ps, d, cancel, &mut on_progress),
            None => traffic.drive(spec, d, cancel, &mut on_progress),
        };
        let probes = match (probes, &mut traffic) {
            (Some(h), _) => Some(h.join().expect("the probe thread does not panic")),
            (None, Ok(driven)) if delegated => {
                Some(driven.probes.take().unwrap_or(Err(isobench_probes::ProbeError::NoReport)))
            }
            (None, _) => None,
        };
        (traffic, probes)
    })
}

/// A tier whose data plane is not there (an AWS emulator): deployed and torn down, nothing
/// measured, so nothing but its deploy and teardown times is reported.
fn partial_tier(
    backend: &mut dyn Backend,
    tp: &TierPlan,
    d: &Deployment,
    deploy_time: Duration,
    skipped: Vec<isobench_core::backend::SkippedPhase>,
    observer: &mut dyn Observer,
) -> Result<PartialTier, RunError> {
    for s in &skipped {
        observer.line(&format!("[{}] skipping {}: {}", tp.name, s.phase.as_str(), s.reason));
    }
    observer.line(&format!(
        "[{}] {} instance(s)/function(s) created in {:.1} s",
        tp.name,
        d.instances.len(),
        deploy_time.as_secs_f64()
    ));
    let teardown = backend.teardown(tp.tier).map_err(|source| RunError::Teardown { tier: tp.name.clone(), source })?;
    observer.line(&format!("[{}] torn down in {:.1} ms", tp.name, teardown.duration.as_secs_f64() * 1e3));
    if !teardown.left_behind.is_empty() {
        return Err(RunError::LeftBehind(teardown.left_behind));
    }
    let all = [Phase::Deploy, Phase::Traffic, Phase::Probes, Phase::Teardown];
    Ok(PartialTier {
        tier: tp.name.clone(),
        ran: all.into_iter().filter(|p| !skipped.iter().any(|s| s.phase == *p)).collect(),
        skipped,
        deploy_ms: deploy_time.as_secs_f64() * 1e3,
        teardown_ms: teardown.duration.as_secs_f64() * 1e3,
    })
}

fn deploy_error(tp: &TierPlan, e: BackendError) -> RunError {
    match e {
        BackendError::Unavailable { .. } => RunError::Unavailable(e),
        BackendError::UnsupportedTier { .. } => RunError::UnsupportedTier(e),
        source => RunError::Deploy { tier: tp.name.clone(), source },
    }
}

/// The load driver's spec for one tier: the scenario's run settings and this tier's tenants.
pub fn load_spec(plan: &Plan, tp: &TierPlan) -> LoadSpec {
    LoadSpec { tenants: tp.tenants.clone(), ..LoadSpec::from_scenario(tp.name.as_str(), &plan.scenario) }
}

/// `summary.json`, `histograms.hlog` and the reports drawn from them.
fn write_results(out: &Path, summary: &Summary, hlog: &HlogWriter) -> Result<(), RunError> {
    let write = |name: &str, bytes: &[u8]| {
        let path = out.join(name);
        std::fs::write(&path, bytes).map_err(|source| RunError::Write { path, source })
    };
    let json = serde_json::to_vec_pretty(summary).map_err(|source| RunError::Serialise { what: "summary", source })?;
    write(isobench_results::SUMMARY_FILE, &json)?;
    write(isobench_results::HISTOGRAMS_FILE, hlog.bytes())?;
    // The page is drawn from the log as written, exactly as `isobench report` would redraw it.
    let histograms = isobench_results::hlog::read(hlog.bytes())?;
    isobench_report::write_reports(out, summary, Some(&histograms))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy_error() -> RunError {
        let source = BackendError::Unavailable { backend: "aws", reason: "the answer was lost".into() };
        RunError::Deploy { tier: "silo-ec2".into(), source }
    }

    #[test]
    fn a_failed_deploy_that_left_resources_ends_as_left_behind() {
        assert!(matches!(failed(deploy_error(), Vec::new()), Ending::Failed(RunError::Deploy { .. })));
        let left = vec!["ec2 instance i-1 (found by the tag query): refused".to_string()];
        assert!(matches!(failed(deploy_error(), left.clone()), Ending::LeftBehind(l) if l == left));
    }
}
