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
/// The load agents' modelled Fargate time (`[aws.agents]`) is part of it.
pub fn projected_cost(plan: &Plan, pricing: &isobench_cost::Pricing) -> Result<f64, CliError> {
    let tiers = isobench_cost::project(plan, pricing).map_err(|e| CliError::BadInput(e.to_string()))?;
    let agents = agents_cost(plan, pricing)?.map_or(0.0, |a| a.usd);
    // What tiers bill while they are created and deleted (an EKS control plane and its nodes).
    let allowances = isobench_aws::plan::allowance_usd(plan, pricing);
    Ok(tiers.iter().map(|(_, p)| p.cost.run_usd).sum::<f64>() + agents + allowances)
}

fn agents_cost(
    plan: &Plan,
    pricing: &isobench_cost::Pricing,
) -> Result<Option<isobench_aws::agents::AgentCost>, CliError> {
    isobench_aws::agents::modelled_cost(plan, pricing).map_err(|e| CliError::BadInput(e.to_string()))
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
    outln!("network interfaces: {} at most at once", isobench_aws::plan::network_interfaces(&plan));
    let pricing = crate::plan::load_pricing(&a.pricing)?;
    if let Some(agents) = agents_cost(&plan, &pricing)? {
        outln!("load agents: ${:.4}; {}", agents.usd, agents.formula);
    }
    let usd = projected_cost(&plan, &pricing)?;
    outln!("projected cost of the run: ${usd:.4} (cap ${:.2}); modelled", aws.max_cost_usd);
    outln!(
        "lifetime: about {} (cap {}); every resource is tagged isobench:expires-at = start + {}",
        humantime::format_duration(isobench_aws::plan::projected_lifetime(&plan)),
        humantime::format_duration(aws.max_lifetime.0),
        humantime::format_duration(aws.max_lifetime.0)
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

/// `isobench agent` in an agent task (`ISOBENCH_AGENT_TRANSPORT=s3`): its orders and its
/// stream through the run's bucket, functions invoked through the SDK with the task's role.
pub fn agent_over_s3() -> Result<i32, CliError> {
    use isobench_aws::agents::function;
    use isobench_aws::agents::session::{self, FunctionRef};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::Internal(e.into()))?;
    let sink =
        rt.block_on(isobench_aws::agents::AgentSink::from_env()).map_err(|e| CliError::BadInput(e.to_string()))?;
    let cancel = crate::signals::install()
        .map_err(|e| CliError::Internal(anyhow::Error::new(e).context("failed to install signal handlers")))?;
    let region = std::env::var("AWS_REGION").ok();
    let handle = rt.handle().clone();
    let connect = |f: &FunctionRef| {
        handle
            .block_on(function::connect(&f.name, region.as_deref(), f.tenant_ids, f.contract))
            .map_err(|e| e.to_string())
    };
    session::run_agent(sink, rt.handle(), &connect, cancel, AGENT_IDLE)
        .map_err(|e| CliError::Internal(anyhow::Error::new(e).context("the agent's session failed")))?;
    Ok(0)
}

/// How long an agent task waits for its next order before it ends on its own (a tier's deploy
/// takes minutes; the run's teardown stops the task anyway).
const AGENT_IDLE: std::time::Duration = std::time::Duration::from_secs(3600);

type AgentsTraffic = std::sync::Arc<dyn isobench_runner::TrafficDriver>;

/// The AWS backend shared with the traffic driver of the run's load agents.
pub fn backend_with_agents(
    a: &crate::args::RunArgs,
    plan: &Plan,
) -> Result<(Box<dyn isobench_core::Backend>, AgentsTraffic), CliError> {
    let agents = isobench_aws::agents::AgentsPlan::of(plan).expect("called with [aws.agents]");
    // Before any call to AWS.
    let binary = agent_binary(a.agent_binary.as_deref(), agents.architecture)?;
    let shared = isobench_aws::traffic::Shared::new(crate::target::aws_backend_of(a, plan)?);
    let driver = isobench_aws::traffic::AgentDriver::new(shared.clone(), plan, std::sync::Arc::new(binary))
        .expect("called with [aws.agents]");
    Ok((Box::new(shared), std::sync::Arc::new(AwsPool(driver))))
}

/// The isobench the agents run: a static Linux executable for their architecture (the
/// container has no Rust toolchain and may have an older C library), `--agent-binary` or, when
/// it qualifies, this very executable.
fn agent_binary(
    explicit: Option<&Path>,
    arch: isobench_core::scenario::aws::Architecture,
) -> Result<Vec<u8>, CliError> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()
            .map_err(|e| CliError::Internal(anyhow::Error::new(e).context("failed to find the isobench executable")))?,
    };
    let bytes = std::fs::read(&path).map_err(|e| CliError::BadInput(format!("{}: {e}", path.display())))?;
    match elf_problem(&bytes, arch) {
        None => Ok(bytes),
        Some(why) => Err(CliError::BadInput(format!(
            "[aws.agents]: the agents run isobench in Linux containers ({arch}), and {} {why}; accepted: a static \
             isobench built with the aws feature for them, e.g. `cargo build --release --features aws --target \
             {target}` (it needs that target's C toolchain for the SDK's TLS), passed with --agent-binary FILE",
            path.display(),
            arch = arch.as_str(),
            target = musl_target(arch),
        ))),
    }
}

fn musl_target(arch: isobench_core::scenario::aws::Architecture) -> &'static str {
    match arch.as_str() {
        "arm64" => "aarch64-unknown-linux-musl",
        _ => "x86_64-unknown-linux-musl",
    }
}

/// Why `b` cannot run in an agent's container, if it cannot: not a 64-bit little-endian ELF
/// executable, another machine, or dynamically linked (it has an interpreter).
pub fn elf_problem(b: &[u8], arch: isobench_core::scenario::aws::Architecture) -> Option<String> {
    let u16_at = |o: usize| b.get(o..o + 2).map(|s| u16::from_le_bytes([s[0], s[1]]));
    let u32_at = |o: usize| b.get(o..o + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]));
    let u64_at = |o: usize| b.get(o..o + 8).map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")));
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 || b[5] != 1 {
        return Some("is not a 64-bit little-endian ELF executable".into());
    }
    let (want, name) = match arch.as_str() {
        "arm64" => (183, "aarch64"),
        _ => (62, "x86_64"),
    };
    if u16_at(18) != Some(want) {
        return Some(format!("is not built for {name}"));
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(32), u16_at(54), u16_at(56)) else {
        return Some("has no program headers".into());
    };
    const PT_INTERP: u32 = 3;
    let dynamic = (0..phnum as usize).any(|i| u32_at(phoff as usize + i * phentsize as usize) == Some(PT_INTERP));
    dynamic.then(|| "is dynamically linked (it needs this host's C library)".into())
}

/// The agents' driver as the runner's `TrafficDriver`.
struct AwsPool(isobench_aws::traffic::AgentDriver);

impl AwsPool {
    fn driven(
        &self,
        spec: &isobench_load::LoadSpec,
        probes: Option<&isobench_runner::ProbeSpec>,
        d: &isobench_core::Deployment,
        cancel: &std::sync::atomic::AtomicBool,
        progress: &mut dyn FnMut(&isobench_load::Snapshot),
    ) -> Result<isobench_runner::Driven, isobench_load::LoadError> {
        let (report, figures, probed) = self.0.drive(spec, probes, d, cancel, progress)?;
        let agents = figures.into_iter().map(crate::agent::summary).collect();
        let probes_by = probes.map(|_| isobench_load::agent::PROBE_AGENT);
        Ok(isobench_runner::Driven {
            report,
            agents: Some(isobench_results::LoadAgents { requested: self.0.count(), note: None, agents, probes_by }),
            probes: probed,
        })
    }
}

/// On AWS the agents run every tier's probes: they are inside the VPC, where the tenants'
/// private network is (LK-NET, LK-CRED).
impl isobench_runner::TrafficDriver for AwsPool {
    fn drive(
        &self,
        spec: &isobench_load::LoadSpec,
        d: &isobench_core::Deployment,
        cancel: &std::sync::atomic::AtomicBool,
        progress: &mut dyn FnMut(&isobench_load::Snapshot),
    ) -> Result<isobench_runner::Driven, isobench_load::LoadError> {
        self.driven(spec, None, d, cancel, progress)
    }

    fn runs_probes(&self, _d: &isobench_core::Deployment) -> bool {
        true
    }

    fn drive_with_probes(
        &self,
        spec: &isobench_load::LoadSpec,
        probes: &isobench_runner::ProbeSpec,
        d: &isobench_core::Deployment,
        cancel: &std::sync::atomic::AtomicBool,
        progress: &mut dyn FnMut(&isobench_load::Snapshot),
    ) -> Result<isobench_runner::Driven, isobench_load::LoadError> {
        self.driven(spec, Some(probes), d, cancel, progress)
    }
}

#[cfg(test)]
mod tests {
    use isobench_core::scenario::aws::Architecture;

    use super::elf_problem;

    /// A 64-bit little-endian ELF header for `machine` with one program header of `ptype`.
    fn elf(machine: u16, ptype: u32) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56];
        b[..4].copy_from_slice(b"\x7fELF");
        (b[4], b[5]) = (2, 1);
        b[18..20].copy_from_slice(&machine.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&1u16.to_le_bytes());
        b[64..68].copy_from_slice(&ptype.to_le_bytes());
        b
    }

    #[test]
    fn only_a_static_elf_for_the_agents_architecture_is_taken() {
        const PT_LOAD: u32 = 1;
        const PT_INTERP: u32 = 3;
        assert_eq!(elf_problem(&elf(62, PT_LOAD), Architecture::X86_64), None);
        assert_eq!(elf_problem(&elf(183, PT_LOAD), Architecture::Arm64), None);
        assert_eq!(elf_problem(&elf(62, PT_LOAD), Architecture::Arm64).unwrap(), "is not built for aarch64");
        assert!(elf_problem(&elf(62, PT_INTERP), Architecture::X86_64).unwrap().contains("dynamically linked"));
        assert!(elf_problem(b"#!/bin/sh\n", Architecture::X86_64).unwrap().contains("not a 64-bit"));
    }
}
