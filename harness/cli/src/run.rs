//! `isobench run` and `isobench validate`: the data flow of a run, top to bottom.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use isobench_core::backend::Phase;
use isobench_core::plan::{Overrides, Plan, TierPlan};
use isobench_core::scenario::{self, Scenario};
use isobench_core::{Backend, BackendError, TierId};
use isobench_results::{RunStatus, Summary, TierSummary};

use crate::args::{RunArgs, Target, ValidateArgs};
use crate::errors::CliError;
use crate::progress::Progress;
use crate::summarize::{HistogramLog, probe_cells, tier_summary};
use crate::{hostinfo, render, report, signals, usage};

pub fn validate(a: ValidateArgs) -> Result<i32, CliError> {
    let (scenario, src) = load_scenario(&a.scenario)?;
    let plan = Plan::new("validate".into(), scenario, scenario::hash(&src), &Overrides::default());
    let pricing = crate::cost::load_pricing(&a.pricing)?;
    let projected = crate::cost::check_prices(&plan, &pricing)?;
    crate::outln!("{}: valid (format version {})", a.scenario.display(), plan.scenario.format_version);
    let run = &plan.scenario.run;
    crate::outln!(
        "  {} tenants, {} tiers, {} per tier at {} req/s ({:?}), timeout {}",
        plan.scenario.tenants.len(),
        plan.tiers.len(),
        run.duration,
        run.rate.0,
        run.arrival,
        run.timeout
    );
    crate::outln!("  arrivals: {}", describe_arrivals(&plan.scenario));
    for t in &plan.tiers {
        crate::outln!("  tier {:<24} {}", t.tier.as_str(), describe(&t.settings));
    }
    crate::out(format_args!("{}", crate::report_cost::projected_costs(&projected, &pricing.info)));
    Ok(0)
}

/// One line on the arrivals' shape and how many requests it plans per tier.
fn describe_arrivals(s: &Scenario) -> String {
    use isobench_core::arrivals::{Shape, TenantMix, TraceMap};
    let expected = isobench_load::Schedule::new(&isobench_load::LoadSpec::from_scenario("validate", s).schedule_spec())
        .expected_len();
    let a = &s.arrivals;
    let mix = match a.tenants {
        _ if a.trace.is_some() => "tenant shares from the trace".into(),
        TenantMix::Zipf => format!("Zipf tenant mix (s = {}, {:?} order)", a.zipf_s, a.zipf_order).to_lowercase(),
        TenantMix::Weights => "weighted tenant mix".into(),
    };
    let shape = match s.shape() {
        Shape::Steady => "steady rate".to_string(),
        Shape::Cycle { phases, burst } => format!(
            "{} phase(s) repeating{}",
            phases.len(),
            burst.map_or(String::new(), |b| format!(", bursts x{} for {} every {}", b.multiplier, b.length, b.period))
        ),
        Shape::Trace { minute, .. } => {
            let t = a.trace.as_ref().expect("a trace shape has a trace");
            let map = match t.map {
                TraceMap::Top => "top",
                TraceMap::RoundRobin => "round-robin",
            };
            format!("trace {} ({map} map, {} per trace minute)", t.file.display(), humantime::format_duration(minute))
        }
    };
    format!("{mix}, {shape}; {expected} requests expected per tier")
}

/// One line on a tier's settings for `validate`.
fn describe(s: &isobench_core::scenario::TierSettings) -> String {
    use isobench_core::scenario::TierSettings;
    match s {
        TierSettings::Ec2(e) => {
            let t = &e.instance_type;
            format!("instance type {} ({} vCPU, {} MiB)", t.name, t.vcpus, t.memory_mib)
        }
        TierSettings::Ecs(e) => format!(
            "{} launch type, task {} CPU units / {} MiB, {} security group template(s), IMDS {}",
            e.launch_type.as_str(),
            e.task_definition.cpu,
            e.task_definition.memory,
            e.network.security_groups.len(),
            if e.imds_reachable() { "reachable" } else { "unreachable" }
        ),
        TierSettings::Lambda(l) => format!(
            "{} MB, timeout {}, keep-alive {}, concurrency {}, code {}",
            l.memory,
            l.timeout,
            l.keep_alive,
            l.concurrency,
            l.code.as_ref().map_or("the sample workload".into(), |c| c.display().to_string())
        ),
    }
}

fn load_scenario(path: &Path) -> Result<(Scenario, String), CliError> {
    Scenario::load(path).map_err(|e| CliError::BadInput(e.to_string()))
}

/// Everything decided before anything is deployed; every check here exits with "bad input".
struct Prepared {
    plan: Plan,
    scenario_path: PathBuf,
    scenario_src: String,
    out: PathBuf,
    pricing: isobench_cost::Pricing,
}

fn prepare(a: &RunArgs) -> Result<Prepared, CliError> {
    let (scenario, src) = load_scenario(&a.scenario)?;
    let overrides = Overrides { seed: a.seed, duration: a.duration, rate: a.rate };
    Plan::check_overrides(&overrides).map_err(CliError::BadInput)?;
    let run_id = new_run_id();
    let mut plan = Plan::new(run_id.clone(), scenario, scenario::hash(&src), &overrides);
    select_tiers(&mut plan, &a.tiers, &a.scenario)?;
    let pricing = crate::cost::load_pricing(&a.pricing)?;
    crate::cost::check_prices(&plan, &pricing)?;
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("results").join(&run_id));
    if out.exists() && std::fs::read_dir(&out).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(CliError::BadInput(format!(
            "--out {}: the directory exists and is not empty; accepted: a new or empty directory",
            out.display()
        )));
    }
    Ok(Prepared { plan, scenario_path: a.scenario.clone(), scenario_src: src, out, pricing })
}

/// Keeps only the tiers named by `--tiers` (all when empty).
pub fn select_tiers(plan: &mut Plan, tiers: &[String], path: &Path) -> Result<(), CliError> {
    if tiers.is_empty() {
        return Ok(());
    }
    let mut wanted = Vec::new();
    for name in tiers {
        let id: TierId = name.parse().map_err(|_| {
            CliError::BadInput(format!("--tiers: unknown tier `{name}`; accepted: {}", TierId::accepted()))
        })?;
        if plan.scenario.tier(id).is_none() {
            return Err(CliError::BadInput(format!(
                "--tiers: tier `{name}` is not in {}; it has: {}",
                path.display(),
                plan.tiers.iter().map(|t| t.tier.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
        wanted.push(id);
    }
    plan.tiers.retain(|t| wanted.contains(&t.tier));
    Ok(())
}

/// Loads a scenario into a plan for `plan` (no run id yet: names show `{run}`).
#[cfg_attr(not(feature = "aws"), allow(dead_code))]
pub fn load_plan(path: &Path, tiers: &[String]) -> Result<Plan, CliError> {
    let (scenario, src) = load_scenario(path)?;
    let mut plan = Plan::new("{run}".into(), scenario, scenario::hash(&src), &Overrides::default());
    select_tiers(&mut plan, tiers, path)?;
    Ok(plan)
}

pub fn run(a: RunArgs) -> Result<i32, CliError> {
    let prepared = prepare(&a)?;
    let mut backend = make_backend(&a, &prepared.plan)?;
    let info = backend.info();
    let cancel = signals::install().context("failed to install signal handlers")?;
    std::fs::create_dir_all(&prepared.out)
        .with_context(|| format!("failed to create results directory {}", prepared.out.display()))?;

    let started = SystemTime::now();
    let t0 = Instant::now();
    let mut progress = Progress::new(a.no_progress_bar);
    let mut hlog = HistogramLog::new(started);
    let mut tiers = Vec::new();
    let mut left_behind = Vec::new();
    let mut budget_hit = None;
    let mut partial = Vec::new();
    let mut stop = Stop { cancel: &cancel, budget_hit: &mut budget_hit };
    let outcome =
        run_tiers(&prepared.plan, backend.as_mut(), &mut stop, &mut progress, &mut hlog, &mut tiers, &mut partial);

    // Teardown runs on every path, also after an error or a signal.
    match backend.teardown_all() {
        Ok(r) => left_behind.extend(r.left_behind),
        Err(e) => left_behind.push(format!("teardown failed: {e}")),
    }
    drop(backend);

    let (status, error) = match &outcome {
        Ok(()) if budget_hit.is_some() => (RunStatus::Failed, budget_hit.clone()),
        Ok(()) if cancel.load(Ordering::SeqCst) => (RunStatus::Interrupted, Some("interrupted by a signal".into())),
        Ok(()) => (RunStatus::Complete, None),
        Err(e) => (RunStatus::Failed, Some(format!("{e}"))),
    };
    let mut summary = Summary {
        schema_version: isobench_results::SCHEMA_VERSION,
        run_id: prepared.plan.run_id.clone(),
        status,
        error,
        started_at: humantime::format_rfc3339_seconds(started).to_string(),
        wall_time_s: t0.elapsed().as_secs_f64(),
        tool: hostinfo::tool(),
        scenario: isobench_results::ScenarioInfo {
            name: prepared.plan.scenario.name.clone(),
            path: prepared.scenario_path.display().to_string(),
            hash: prepared.plan.scenario_hash.clone(),
            source: prepared.scenario_src.clone(),
            effective: serde_json::to_value(&prepared.plan.scenario).context("failed to serialise the scenario")?,
        },
        host: hostinfo::host(),
        backend: backend_summary(a.target, &info),
        tiers,
        left_behind: left_behind.clone(),
        histograms: isobench_results::HISTOGRAMS_FILE.into(),
        pricing: None,
        harness: Some(usage::harness_usage()),
        partial_tiers: partial,
    };
    crate::cost::fill(&mut summary, &prepared.plan, &prepared.pricing);
    write_results(&prepared.out, &summary, &hlog)?;
    progress.finish();
    crate::out(format_args!("{}", report::terminal_table(&summary)));
    crate::out(format_args!("{}", crate::report_cost::cost_table(&summary)));
    crate::outln!("results: {}", prepared.out.display());

    check_identity(&summary)?;
    let cells = summary.tiers.iter().flat_map(|t| t.probes.iter().map(move |c| (t, c)));
    let unexpected: Vec<String> =
        cells.clone().filter(|(_, c)| c.unexpected).map(|(t, c)| format!("{} on {}", c.probe, t.tier)).collect();
    let inconclusive: Vec<String> =
        cells.filter(|(_, c)| c.verdict == "inconclusive").map(|(t, c)| format!("{} on {}", c.probe, t.tier)).collect();
    match outcome {
        Err(e) => Err(e),
        Ok(()) if budget_hit.is_some() => Err(CliError::ErrorBudget(budget_hit.unwrap_or_default())),
        Ok(()) if cancel.load(Ordering::SeqCst) => Err(CliError::Interrupted),
        Ok(()) if !left_behind.is_empty() => Err(CliError::LeftBehind(left_behind)),
        Ok(()) if !unexpected.is_empty() => Err(CliError::UnexpectedLeak(unexpected)),
        Ok(()) if !inconclusive.is_empty() => Err(CliError::Inconclusive(inconclusive)),
        Ok(()) => Ok(0),
    }
}

/// What stops a run early: a signal, or a tier exhausting its error budget (which also sets
/// `cancel`, so everything that stops on a signal stops on it too).
struct Stop<'a> {
    cancel: &'a Arc<AtomicBool>,
    budget_hit: &'a mut Option<String>,
}

fn run_tiers(
    plan: &Plan,
    backend: &mut dyn Backend,
    stop: &mut Stop<'_>,
    progress: &mut Progress,
    hlog: &mut HistogramLog,
    out: &mut Vec<TierSummary>,
    partial: &mut Vec<isobench_results::PartialTier>,
) -> Result<(), CliError> {
    let cancel = stop.cancel;
    for tp in &plan.tiers {
        if cancel.load(Ordering::SeqCst) {
            break;
        }
        progress.line(&format!("[{}] deploying {} tenants", tp.tier, tp.tenants.len()));
        let rss_before = usage::rss_bytes();
        let deploy_started = Instant::now();
        let deployment = backend.deploy(tp).map_err(|e| deploy_error(tp, e))?;
        let deploy_time = deploy_started.elapsed();
        let skipped = backend.skipped_phases(tp.tier);
        if !skipped.is_empty() {
            partial.push(partial_tier(backend, tp, &deployment, deploy_time, skipped, progress)?);
            continue;
        }
        let memory_after_deploy = backend.memory_in_use();
        let starts: Vec<f64> = deployment.instances.iter().map(|i| i.start_time.as_secs_f64() * 1e3).collect();
        progress.line(&format!(
            "[{}] {} instance(s) up; start time median {:.2} ms",
            tp.tier,
            deployment.instances.len(),
            isobench_results::Spread::of(&starts).median
        ));
        let spec = load_spec(plan, tp);
        let (report, probe_report) = if cancel.load(Ordering::SeqCst) {
            (None, None)
        } else {
            let unprobeable = backend.unprobeable();
            let (r, p) = traffic_and_probes(plan, tp, &spec, &deployment, &unprobeable, stop, progress);
            progress.end_phase();
            let r = r.map_err(|e| CliError::Internal(anyhow::anyhow!("traffic for tier {} failed: {e}", tp.tier)))?;
            let p = p
                .transpose()
                .map_err(|e| CliError::Internal(anyhow::anyhow!("probes for tier {} failed: {e}", tp.tier)))?;
            (Some(r), p)
        };
        let memory_after_traffic = backend.memory_in_use();
        let rss_after_traffic = usage::rss_bytes();
        let noisy = match (&plan.scenario.noisy_neighbour, &report) {
            (Some(n), Some(_)) => crate::noisy::measure(n, &spec, &deployment, cancel, progress)
                .map_err(|e| CliError::Internal(anyhow::anyhow!("tier {}: {e}", tp.tier)))?,
            _ => None,
        };
        progress.line(&format!("[{}] tearing down", tp.tier));
        let teardown = backend.teardown(tp.tier).map_err(|e| CliError::Internal(e.into()))?;
        progress.line(&format!("[{}] torn down in {:.1} ms", tp.tier, teardown.duration.as_secs_f64() * 1e3));
        if let Some(report) = report {
            hlog.add(tp.tier, &report).map_err(|e| CliError::Internal(e.into()))?;
            let mut summary = tier_summary(tp, &spec, &report, &deployment, &teardown);
            summary.noisy_neighbour = noisy;
            // Published AWS timings beside the emulator's own; the cloud is measured directly.
            if backend.info().fidelity != isobench_core::backend::Fidelity::Cloud {
                summary.calibration = crate::cost::calibration(tp, summary.instance_start_ms, &report);
            }
            summary.footprint = Some(footprint(
                &summary,
                deploy_time,
                [memory_after_deploy, memory_after_traffic],
                [rss_before, rss_after_traffic],
            ));
            progress.line(&footprint_line(&summary));
            if let Some(p) = &probe_report {
                summary.probes = probe_cells(p);
                for e in &p.errors {
                    progress.line(&format!("[{}] probe call failed: {e}", tp.tier));
                }
            }
            out.push(summary);
        }
        if !teardown.left_behind.is_empty() {
            return Err(CliError::LeftBehind(teardown.left_behind));
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

type TrafficResult = Result<isobench_load::LoadReport, isobench_load::LoadError>;
type ProbeResult = Option<Result<isobench_probes::ProbeReport, isobench_probes::ProbeError>>;

/// Traffic on this thread and, when the scenario asks for them, probes beside it on another,
/// so probes meet environments in the state traffic leaves them in.
fn traffic_and_probes(
    plan: &Plan,
    tp: &TierPlan,
    spec: &isobench_load::LoadSpec,
    d: &isobench_core::Deployment,
    unprobeable: &[(isobench_core::probes::Channel, &'static str)],
    stop: &mut Stop<'_>,
    progress: &mut Progress,
) -> (TrafficResult, ProbeResult) {
    let cancel = stop.cancel;
    let probe_spec = plan.scenario.probes.as_ref().map(|p| isobench_probes::ProbeSpec {
        run_id: plan.run_id.clone(),
        tier: tp.tier,
        settings: tp.settings.clone(),
        workload: tp.workload.clone(),
        probes: isobench_core::probes::CATALOGUE
            .iter()
            .filter(|d| p.only.is_empty() || p.only.iter().any(|id| id == d.id))
            .collect(),
        trials: p.trials,
        seed: plan.scenario.run.seed,
        not_applicable: unprobeable.iter().map(|(c, why)| (*c, why.to_string())).collect(),
    });
    std::thread::scope(|s| {
        let probes = probe_spec
            .as_ref()
            .map(|ps| s.spawn(move || isobench_probes::run(ps, &d.targets, d.netns.as_deref(), cancel)));
        let mut watch = isobench_load::BudgetWatch::new(&plan.scenario.run.error_budget);
        let budget_hit = &mut *stop.budget_hit;
        let mut on_progress = |snap: &isobench_load::Snapshot| {
            progress.update(tp.tier.as_str(), snap);
            if budget_hit.is_none()
                && let Some(why) = watch.observe(snap)
            {
                progress.line(&format!("[{}] stopping: {why}", tp.tier));
                *budget_hit = Some(format!("tier {}: {why}", tp.tier));
                cancel.store(true, Ordering::SeqCst);
            }
        };
        let traffic = isobench_load::run(spec, &d.targets, d.netns.as_deref(), cancel, &mut on_progress);
        let probes = probes.map(|h| h.join().expect("the probe thread does not panic"));
        (traffic, probes)
    })
}

/// A tier whose data plane is not there (an AWS emulator): deployed and torn down, nothing
/// measured, so nothing but its deploy and teardown times is reported.
fn partial_tier(
    backend: &mut dyn Backend,
    tp: &TierPlan,
    d: &isobench_core::Deployment,
    deploy_time: Duration,
    skipped: Vec<isobench_core::backend::SkippedPhase>,
    progress: &mut Progress,
) -> Result<isobench_results::PartialTier, CliError> {
    for s in &skipped {
        progress.line(&format!("[{}] skipping {}: {}", tp.tier, s.phase.as_str(), s.reason));
    }
    progress.line(&format!(
        "[{}] {} instance(s)/function(s) created in {:.1} s",
        tp.tier,
        d.instances.len(),
        deploy_time.as_secs_f64()
    ));
    let teardown = backend.teardown(tp.tier).map_err(|e| CliError::Internal(e.into()))?;
    progress.line(&format!("[{}] torn down in {:.1} ms", tp.tier, teardown.duration.as_secs_f64() * 1e3));
    if !teardown.left_behind.is_empty() {
        return Err(CliError::LeftBehind(teardown.left_behind));
    }
    let all = [Phase::Deploy, Phase::Traffic, Phase::Probes, Phase::Teardown];
    Ok(isobench_results::PartialTier {
        tier: tp.tier.as_str().into(),
        ran: all.iter().filter(|p| !skipped.iter().any(|s| s.phase == **p)).map(|p| p.as_str().into()).collect(),
        skipped: skipped
            .into_iter()
            .map(|s| isobench_results::SkippedPhase { phase: s.phase.as_str().into(), reason: s.reason })
            .collect(),
        deploy_ms: deploy_time.as_secs_f64() * 1e3,
        teardown_ms: teardown.duration.as_secs_f64() * 1e3,
    })
}

fn deploy_error(tp: &TierPlan, e: BackendError) -> CliError {
    match e {
        BackendError::Unavailable { .. } => CliError::Unavailable(e.to_string()),
        BackendError::UnsupportedTier { .. } => CliError::BadInput(e.to_string()),
        e => CliError::Deploy(anyhow::Error::new(e).context(format!("tier {}", tp.tier))),
    }
}

fn load_spec(plan: &Plan, tp: &TierPlan) -> isobench_load::LoadSpec {
    let s = &plan.scenario;
    isobench_load::LoadSpec {
        label: tp.tier.as_str().to_string(),
        duration: s.run.duration.0,
        rate: s.run.rate.0,
        arrival: s.run.arrival,
        seed: s.run.seed,
        tenants: tp.tenants.clone(),
        mix: s.mix.clone(),
        timeout: s.run.timeout.0,
        max_connections: s.run.max_connections as usize,
        compute_us: s.workload.compute.0.as_micros() as u64,
        record_size: s.workload.record_size.0 as usize,
        keys_per_tenant: s.workload.keys_per_tenant,
        worker_threads: 0,
        realtime_dispatcher: false,
        shape: s.shape(),
    }
}

/// The accounting identity is a promise of the tool: a summary that breaks it is a bug.
fn check_identity(s: &Summary) -> Result<(), CliError> {
    for t in &s.tiers {
        let tenants_ok =
            t.per_tenant.iter().all(|p| p.traffic.balanced() && p.ops.iter().all(|o| o.traffic.balanced()));
        if !t.traffic.balanced() || !tenants_ok {
            return Err(CliError::Internal(anyhow::anyhow!(
                "accounting identity broken for tier {}: sent {} != ok {} + errors {} + timeouts {}",
                t.tier,
                t.traffic.sent,
                t.traffic.ok,
                t.traffic.errors,
                t.traffic.timeouts
            )));
        }
    }
    Ok(())
}

fn write_results(out: &Path, summary: &Summary, hlog: &HistogramLog) -> Result<(), CliError> {
    let write = |name: &str, bytes: &[u8]| {
        let p = out.join(name);
        std::fs::write(&p, bytes).with_context(|| format!("failed to write {}", p.display()))
    };
    let json = serde_json::to_vec_pretty(summary).context("failed to serialise the summary")?;
    write(isobench_results::SUMMARY_FILE, &json)?;
    let histograms = hlog.finish().map_err(|e| CliError::Internal(e.into()))?;
    write(isobench_results::HISTOGRAMS_FILE, &histograms)?;
    // The page is drawn from the log as written, exactly as `isobench report` would redraw it.
    let histograms = isobench_report::hlog::read(&histograms).map_err(|e| CliError::Internal(e.into()))?;
    render::write_reports(out, summary, Some(&histograms))
}

/// A sortable, unique run id: UTC time plus random bits, e.g. `20261129T051500Z-3fa9c2`.
pub fn new_run_id() -> String {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let stamp = humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_secs(now.as_secs()))
        .to_string()
        .replace(['-', ':'], "");
    let mut buf = [0u8; 3];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf));
    let salt = u32::from_le_bytes([buf[0], buf[1], buf[2], 0]) ^ now.subsec_nanos() ^ std::process::id();
    format!("{}-{:06x}", stamp.trim_end_matches('Z').to_string() + "Z", salt & 0xff_ffff)
}

fn backend_summary(target: Target, info: &isobench_core::backend::BackendInfo) -> isobench_results::BackendSummary {
    match target {
        Target::Local => isobench_results::BackendSummary {
            name: "local".into(),
            fidelity: "emulated".into(),
            description: "Linux namespaces, cgroups and veth on one host; isolation is real, AWS timings are not"
                .into(),
        },
        Target::Aws => isobench_results::BackendSummary {
            name: "aws".into(),
            fidelity: info.fidelity.as_str().into(),
            description: info.description.clone(),
        },
        Target::Endpoints => crate::endpoints::summary(),
    }
}

fn make_backend(a: &RunArgs, plan: &Plan) -> Result<Box<dyn Backend>, CliError> {
    if a.endpoints.is_some() && a.target != Target::Endpoints {
        return Err(CliError::BadInput("--endpoints is only used with --target endpoints".into()));
    }
    match a.target {
        Target::Local => local_backend(&plan.run_id),
        Target::Aws => aws_backend(a, plan),
        Target::Endpoints => crate::endpoints::backend(a.endpoints.as_deref(), plan),
    }
}

#[cfg(feature = "aws")]
fn aws_backend(a: &RunArgs, plan: &Plan) -> Result<Box<dyn Backend>, CliError> {
    crate::aws::check_guard_rails(plan, &crate::cost::load_pricing(&a.pricing)?)?;
    let workload = match &a.workload_binary {
        Some(p) => isobench_aws::Workload::Binary(p.clone()),
        None => isobench_aws::Workload::Build {
            workspace: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
            target_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"),
        },
    };
    let opts = crate::aws::options(&a.aws, a.pricing.region.as_ref());
    match isobench_aws::AwsBackend::new(&plan.run_id, plan.scenario.aws.clone(), &opts, &workload) {
        Ok(b) => Ok(Box::new(b)),
        Err(e) => Err(CliError::Unavailable(e.to_string())),
    }
}

#[cfg(not(feature = "aws"))]
fn aws_backend(_a: &RunArgs, _plan: &Plan) -> Result<Box<dyn Backend>, CliError> {
    Err(CliError::BadInput(aws_unavailable()))
}

/// Why `--target aws` cannot run in this build, and what would help.
#[cfg_attr(feature = "aws", allow(dead_code))]
pub fn aws_unavailable() -> String {
    "--target aws: this build has no AWS backend; rebuild with `cargo build --release --features aws`".into()
}

#[cfg(target_os = "linux")]
fn local_backend(run_id: &str) -> Result<Box<dyn Backend>, CliError> {
    let dir = std::env::current_exe()
        .context("failed to find the isobench executable")?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let config = isobench_local::LocalConfig::beside_executable(&dir, run_id);
    match isobench_local::LocalBackend::new(config) {
        Ok(b) => Ok(Box::new(b)),
        Err(e @ BackendError::Unavailable { .. }) => Err(CliError::Unavailable(e.to_string())),
        Err(e) => Err(CliError::Deploy(e.into())),
    }
}

#[cfg(not(target_os = "linux"))]
fn local_backend(_run_id: &str) -> Result<Box<dyn Backend>, CliError> {
    Err(CliError::Unavailable("the local emulator needs Linux (namespaces and cgroups)".into()))
}
