//! `isobench plan --target aws`: every resource a run would create, and the guard rails checked
//! before anything is created.

use std::time::Duration;

use isobench_core::diagnostics::Problem;
use isobench_core::plan::Plan;
use isobench_core::scenario::TierSettings;
use isobench_core::scenario::lambda::DEFAULT_ACCOUNT_CONCURRENCY;

use crate::agents::{self, AgentsPlan};
use crate::context::VPC_CIDR;
use crate::tier::planned_name;
use crate::tiers;

// Their old paths: the types moved beside the tier trait, whose methods answer with them.
use crate::tier::Needs;
pub use crate::tier::{Counts, Planned};

pub use crate::tier::TIER_OVERHEAD;

/// Every resource the run would create, in creation order: the run's shared resources the
/// tiers and agents need, the agents', then each tier's own, as its module lists them.
pub fn resources(plan: &Plan) -> Vec<Planned> {
    let tenants: Vec<String> = plan.scenario.tenants.iter().map(|t| t.id.clone()).collect();
    let mut out = shared(plan);
    out.extend(agents::planned(plan));
    for t in &plan.tiers {
        out.extend(tiers::module(t.tier).planned(t, &tenants));
    }
    out
}

/// The VPC, its subnets, the harness group and the workload bucket, as far as tiers and
/// agents need them.
fn shared(plan: &Plan) -> Vec<Planned> {
    let aws = &plan.scenario.aws;
    let mut needs: Vec<_> = plan.tiers.iter().map(|t| tiers::module(t.tier).needs(t)).collect();
    if let Some(a) = AgentsPlan::of(plan) {
        needs.push(Needs { subnets: a.subnets, workload_bucket: true });
    }
    let mut out = Vec::new();
    let mut add = |kind, name: String| out.push(Planned { tier: None, kind, name });
    if needs.iter().any(|x| !x.subnets.is_empty()) {
        if aws.vpc_id.is_none() {
            add("ec2 vpc", format!("{} ({VPC_CIDR})", planned_name("vpc")));
            add("ec2 internet gateway", planned_name("igw"));
        }
        let mut subnets: Vec<&String> = Vec::new();
        for s in needs.iter().flat_map(|x| &x.subnets) {
            if !subnets.contains(&s) {
                let kind = if aws.vpc_id.is_some() { "ec2 subnet (existing)" } else { "ec2 subnet" };
                add(kind, planned_name(s));
                subnets.push(s);
            }
        }
        if aws.harness_cidr.is_none() {
            add("ec2 security group", planned_name("harness"));
        }
    }
    if needs.iter().any(|x| x.workload_bucket) {
        add("s3 bucket", planned_name("workload"));
        add("s3 object", format!("{}/tenant-app", planned_name("workload")));
    }
    out
}

/// Every setting of the plan's tiers this backend does not implement, as a problem at the
/// tier's field (`tier[1].code`), to be located in the scenario file. Checked before anything
/// is created: a run that ignored them would measure something else than the scenario says.
pub fn refused(plan: &Plan) -> Vec<Problem> {
    let mut out = Vec::new();
    for tp in &plan.tiers {
        // The scenario keeps every tier in file order (`--tiers` only narrows the plan); a
        // tier is known by its name (one id may appear under several names).
        let i = plan.scenario.tiers.iter().position(|t| t.name == tp.name).unwrap_or_default();
        for r in tiers::module(tp.tier).refused(tp) {
            out.push(Problem::new(format!("tier[{i}].{}", r.field), r.message, r.accepted));
        }
        if let Some(p) = architecture_refusal(plan, tp, i) {
            out.push(p);
        }
    }
    out
}

/// A tier whose architecture is not the run's workload binary's, at the field that set it.
fn architecture_refusal(plan: &Plan, tp: &isobench_core::plan::TierPlan, i: usize) -> Option<Problem> {
    let run_wide = plan.scenario.aws.architecture;
    let message = crate::tier::architecture_mismatch(tp, run_wide)?;
    let arch = crate::tier::tier_architecture(tp)?;
    // On the ec2 launch type without an `architecture`, the instance type chose it.
    let from_instance = matches!(&tp.settings, TierSettings::Ecs(e) if e.container_instance.is_some());
    let field = if from_instance { "container_instance.instance_type" } else { "architecture" };
    let accepted = format!(
        "[aws] architecture = \"{a}\" for the whole run (the workload is then built for {t}, or given with \
         --workload-binary), or this tier on {r}",
        a = arch.as_str(),
        t = arch.default_rust_target(),
        r = run_wide.as_str()
    );
    Some(Problem::new(format!("tier[{i}].{field}"), message, accepted))
}

/// The plan's settings that only shape the local emulator, one line per tier or section
/// (`lambda-shared: keep_alive = "5m..15m"`): a run on AWS ignores them.
pub fn ignored(plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    for tp in &plan.tiers {
        let settings = tiers::module(tp.tier).ignored(tp);
        if !settings.is_empty() {
            out.push(format!("{}: {}", tp.tier, settings.join(", ")));
        }
    }
    let account = plan.scenario.local.lambda_account_concurrency;
    if account != DEFAULT_ACCOUNT_CONCURRENCY
        && plan.tiers.iter().any(|t| matches!(t.settings, TierSettings::Lambda(_)))
    {
        out.push(format!("[local]: lambda_account_concurrency = {account} (the account's own quota applies)"));
    }
    out
}

/// What the run starts: the tiers' compute and the load agents (tasks too).
pub fn counts(plan: &Plan) -> Counts {
    let tenants = plan.scenario.tenants.len() as u32;
    let mut c = agents::counts(plan);
    for t in &plan.tiers {
        c += tiers::module(t.tier).counts_for(t, tenants);
    }
    c
}

/// Network interfaces the run holds at once at most: one per instance and per `awsvpc` task
/// (tier tasks and agents); functions outside a VPC hold none. Tiers run one after another,
/// but the agents live through all of them.
pub fn network_interfaces(plan: &Plan) -> u32 {
    let tenants = plan.scenario.tenants.len() as u32;
    let agents = agents::counts(plan).tasks;
    let widest = plan.tiers.iter().map(|t| tiers::module(t.tier).counts(tenants)).map(|c| c.instances + c.tasks).max();
    agents + widest.unwrap_or(0)
}

/// How long the run's resources would exist: tiers run one after another, each for its
/// traffic and its deploy/teardown allowance ([`allowances`]).
pub fn projected_lifetime(plan: &Plan) -> Duration {
    plan.scenario.run.duration.0 * plan.tiers.len() as u32 + allowances(plan)
}

/// The tiers' deploy and teardown allowances together: ten minutes a tier, more for an EKS
/// cluster's creation and deletion.
pub fn allowances(plan: &Plan) -> Duration {
    plan.tiers.iter().map(|t| tiers::module(t.tier).allowance(t)).sum()
}

/// What the run's tiers bill during their deploy/teardown allowances beyond the cost model's
/// projection (modelled, dollars; see [`crate::tier::AwsTier::allowance_usd`]): add it to the
/// projected cost the cost guard rail checks.
pub fn allowance_usd(plan: &Plan, pricing: &isobench_cost::Pricing) -> f64 {
    let tenants = plan.scenario.tenants.len() as u32;
    plan.tiers.iter().map(|t| tiers::module(t.tier).allowance_usd(t, tenants, pricing)).sum()
}

/// AWS's default quota of network interfaces per region (VPC quotas, "Network interfaces per
/// Region"); an account may have more, but a run that needs more than the default is unusual.
pub const NETWORK_INTERFACE_QUOTA: u32 = 5000;

/// A guard rail the plan exceeds.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GuardRail {
    #[error("the run would start {wanted} EC2 instances, more than [aws] max_instances = {cap}")]
    Instances { wanted: u32, cap: u32 },
    #[error("the run would start {wanted} ECS tasks, more than [aws] max_tasks = {cap}")]
    Tasks { wanted: u32, cap: u32 },
    #[error(
        "the run would hold {wanted} network interfaces at once (instances, awsvpc tasks and agents), more than \
         AWS's default quota of {cap} per region"
    )]
    NetworkInterfaces { wanted: u32, cap: u32 },
    #[error("the run would create {wanted} Lambda functions, more than [aws] max_functions = {cap}")]
    Functions { wanted: u32, cap: u32 },
    #[error("the run's projected cost ${wanted:.4} is more than [aws] max_cost_usd = ${cap:.4}")]
    Cost { wanted: f64, cap: f64 },
    #[error(
        "the run would keep resources for about {} ({} tier(s): traffic, and {} of deploy/teardown allowances, \
         {} a tier and more for an EKS cluster), longer than [aws] max_lifetime = {}",
        humantime::format_duration(*wanted), tiers, humantime::format_duration(*allowance),
        humantime::format_duration(TIER_OVERHEAD), humantime::format_duration(*cap)
    )]
    Lifetime { wanted: Duration, cap: Duration, tiers: usize, allowance: Duration },
}

/// Every guard rail the plan exceeds; `cost` is the projected cost in dollars when known.
pub fn check(plan: &Plan, cost: Option<f64>) -> Vec<GuardRail> {
    let aws = &plan.scenario.aws;
    let c = counts(plan);
    let mut out = Vec::new();
    if c.instances > aws.max_instances {
        out.push(GuardRail::Instances { wanted: c.instances, cap: aws.max_instances });
    }
    if c.tasks > aws.max_tasks {
        out.push(GuardRail::Tasks { wanted: c.tasks, cap: aws.max_tasks });
    }
    let enis = network_interfaces(plan);
    if enis > NETWORK_INTERFACE_QUOTA {
        out.push(GuardRail::NetworkInterfaces { wanted: enis, cap: NETWORK_INTERFACE_QUOTA });
    }
    if c.functions > aws.max_functions {
        out.push(GuardRail::Functions { wanted: c.functions, cap: aws.max_functions });
    }
    if let Some(cost) = cost
        && cost > aws.max_cost_usd
    {
        out.push(GuardRail::Cost { wanted: cost, cap: aws.max_cost_usd });
    }
    let life = projected_lifetime(plan);
    if life > aws.max_lifetime.0 {
        out.push(GuardRail::Lifetime {
            wanted: life,
            cap: aws.max_lifetime.0,
            tiers: plan.tiers.len(),
            allowance: allowances(plan),
        });
    }
    out
}
