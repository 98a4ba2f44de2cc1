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
use crate::{hostinfo, report, signals};

pub fn validate(a: ValidateArgs) -> Result<i32, CliError> {
    let (scenario, src) = load_scenario(&a.scenario)?;
    let plan = Plan::new("validate".into(), scenario, scenario::hash(&src), &Overrides::default());
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
    for t in &plan.tiers {
        crate::outln!("  tier {:<24} {}", t.tier.as_str(), describe(&t.settings));
    }
    Ok(0)
}

/// One line on a tier's settings for `validate`.
fn describe(s: &isobench_core::scenario::TierSettings) -> String {
    use isobench_core::scenario::TierSettings;
    match s {
        TierSettings::Ec2 { instance_type: t } => {
            format!("instance type {} ({} vCPU, {} MiB)", t.name, t.vcpus, t.memory_mib)
        }
        TierSettings::Ecs(e) => format!(
            "{} launch type, task {} CPU units / {} MiB, {} security group template(s), IMDS {}",
            e.launch_type.as_str(),
            e.task_definition.cpu,
            e.task_definition.memory,
            e.security_groups.len(),
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
}

fn prepare(a: &RunArgs) -> Result<Prepared, CliError> {
    let (scenario, src) = load_scenario(&a.scenario)?;
    let overrides = Overrides { seed: a.seed, duration: a.duration, rate: a.rate };
    Plan::check_overrides(&overrides).map_err(CliError::BadInput)?;
    let run_id = new_run_id();
    let mut plan = Plan::new(run_id.clone(), scenario, scenario::hash(&src), &overrides);
    select_tiers(&mut plan, &a.tiers, &a.scenario)?;
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("results").join(&run_id));
    if out.exists() && std::fs::read_dir(&out).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(CliError::BadInput(format!(
            "--out {}: the directory exists and is not empty; accepted: a new or empty directory",
            out.display()
        )));
    }
    Ok(Prepared { plan, scenario_path: a.scenario.clone(), scenario_src: src, out })
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
    let mut partial = Vec::new();
    let outcome =
        run_tiers(&prepared.plan, backend.as_mut(), &cancel, &mut progress, &mut hlog, &mut tiers, &mut partial);

    // Teardown runs on every path, also after an error or a signal.
    match backend.teardown_all() {
        Ok(r) => left_behind.extend(r.left_behind),
        Err(e) => left_behind.push(format!("teardown failed: {e}")),
    }
    drop(backend);

    let (status, error) = match &outcome {
        Ok(()) if cancel.load(Ordering::SeqCst) => (RunStatus::Interrupted, Some("interrupted by a signal".into())),
        Ok(()) => (RunStatus::Complete, None),
        Err(e) => (RunStatus::Failed, Some(format!("{e}"))),
    };
    let summary = Summary {
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
        partial_tiers: partial,
    };
    write_results(&prepared.out, &summary, &hlog)?;
    progress.finish();
    crate::out(format_args!("{}", report::terminal_table(&summary)));
    crate::outln!("results: {}", prepared.out.display());

    check_identity(&summary)?;
    let cells = summary.tiers.iter().flat_map(|t| t.probes.iter().map(move |c| (t, c)));
    let unexpected: Vec<String> =
        cells.clone().filter(|(_, c)| c.unexpected).map(|(t, c)| format!("{} on {}", c.probe, t.tier)).collect();
    let inconclusive: Vec<String> =
        cells.filter(|(_, c)| c.verdict == "inconclusive").map(|(t, c)| format!("{} on {}", c.probe, t.tier)).collect();
    match outcome {
        Err(e) => Err(e),
        Ok(()) if cancel.load(Ordering::SeqCst) => Err(CliError::Interrupted),
        Ok(()) if !left_behind.is_empty() => Err(CliError::LeftBehind(left_behind)),
        Ok(()) if !unexpected.is_empty() => Err(CliError::UnexpectedLeak(unexpected)),
        Ok(()) if !inconclusive.is_empty() => Err(CliError::Inconclusive(inconclusive)),
        Ok(()) => Ok(0),
    }
}

fn run_tiers(
    plan: &Plan,
    backend: &mut dyn Backend,
    cancel: &Arc<AtomicBool>,
    progress: &mut Progress,
    hlog: &mut HistogramLog,
    out: &mut Vec<TierSummary>,
    partial: &mut Vec<isobench_results::PartialTier>,
) -> Result<(), CliError> {
    for tp in &plan.tiers {
        if cancel.load(Ordering::SeqCst) {
            break;
        }
        progress.line(&format!("[{}] deploying {} tenants", tp.tier, tp.tenants.len()));
        let deploy_start = Instant::now();
        let deployment = backend.deploy(tp).map_err(|e| deploy_error(tp, e))?;
        let deploy_time = deploy_start.elapsed();
        let skipped = backend.skipped_phases(tp.tier);
        if !skipped.is_empty() {
            partial.push(partial_tier(backend, tp, &deployment, deploy_time, skipped, progress)?);
            continue;
        }
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
            let (r, p) = traffic_and_probes(plan, tp, &spec, &deployment, cancel, progress);
            progress.end_phase();
            let r = r.map_err(|e| CliError::Internal(anyhow::anyhow!("traffic for tier {} failed: {e}", tp.tier)))?;
            let p = p
                .transpose()
                .map_err(|e| CliError::Internal(anyhow::anyhow!("probes for tier {} failed: {e}", tp.tier)))?;
            (Some(r), p)
        };
        let noisy = match (&plan.scenario.noisy_neighbour, &report) {
            (Some(n), Some(_)) => crate::noisy::measure(n, &spec, &deployment, cancel, progress)
                .map_err(|e| CliError::Internal(anyhow::anyhow!("tier {}: {e}", tp.tier)))?,
            _ => None,
        };
        let teardown = backend.teardown(tp.tier).map_err(|e| CliError::Internal(e.into()))?;
        progress.line(&format!("[{}] torn down in {:.1} ms", tp.tier, teardown.duration.as_secs_f64() * 1e3));
        if let Some(report) = report {
            hlog.add(tp.tier, &report).map_err(|e| CliError::Internal(e.into()))?;
            let mut summary = tier_summary(tp, &spec, &report, &deployment, &teardown);
            summary.noisy_neighbour = noisy;
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

type TrafficResult = Result<isobench_load::LoadReport, isobench_load::LoadError>;
type ProbeResult = Option<Result<isobench_probes::ProbeReport, isobench_probes::ProbeError>>;

/// Traffic on this thread and, when the scenario asks for them, probes beside it on another,
/// so probes meet environments in the state traffic leaves them in.
fn traffic_and_probes(
    plan: &Plan,
    tp: &TierPlan,
    spec: &isobench_load::LoadSpec,
    d: &isobench_core::Deployment,
    cancel: &Arc<AtomicBool>,
    progress: &mut Progress,
) -> (TrafficResult, ProbeResult) {
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
    });
    std::thread::scope(|s| {
        let probes = probe_spec
            .as_ref()
            .map(|ps| s.spawn(move || isobench_probes::run(ps, &d.targets, d.netns.as_deref(), cancel)));
        let mut on_progress = |snap: &isobench_load::Snapshot| progress.update(tp.tier.as_str(), snap);
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
    write(isobench_results::HISTOGRAMS_FILE, &hlog.finish().map_err(|e| CliError::Internal(e.into()))?)?;
    write(isobench_results::REPORT_MD_FILE, report::markdown(summary).as_bytes())?;
    if summary.tiers.iter().any(|t| !t.probes.is_empty()) {
        write(isobench_results::JUNIT_FILE, report::junit(summary).as_bytes())?;
    }
    Ok(())
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
    }
}

fn make_backend(a: &RunArgs, plan: &Plan) -> Result<Box<dyn Backend>, CliError> {
    match a.target {
        Target::Local => local_backend(&plan.run_id),
        Target::Aws => aws_backend(a, plan),
    }
}

#[cfg(feature = "aws")]
fn aws_backend(a: &RunArgs, plan: &Plan) -> Result<Box<dyn Backend>, CliError> {
    crate::aws::check_guard_rails(plan)?;
    let workload = match &a.workload_binary {
        Some(p) => isobench_aws::Workload::Binary(p.clone()),
        None => isobench_aws::Workload::Build {
            workspace: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
            target_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"),
        },
    };
    let opts = crate::aws::options(&a.aws);
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
