//! `isobench plan --target aws`: every resource a run would create, and the guard rails checked
//! before anything is created.

use std::time::Duration;

use isobench_core::TierId;
use isobench_core::plan::Plan;
use isobench_core::scenario::TierSettings;
use isobench_core::scenario::ecs::LaunchType;

/// One resource a run would create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// `None`: shared by the run's tiers.
    pub tier: Option<TierId>,
    pub kind: &'static str,
    pub name: String,
}

/// What a run would start, against the caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub instances: u32,
    pub tasks: u32,
    pub functions: u32,
}

/// Time a tier's deploy and teardown may take on AWS beyond its traffic, for the lifetime
/// check: instances start in ~30 s, Fargate tasks in up to a minute, deletes wait for network
/// interfaces to detach. A generous allowance, not a measurement.
pub const TIER_OVERHEAD: Duration = Duration::from_secs(10 * 60);

fn n(name: &str) -> String {
    format!("isobench-{{run}}-{name}")
}

/// Every resource the run would create, in creation order.
pub fn resources(plan: &Plan) -> Vec<Planned> {
    let aws = &plan.scenario.aws;
    let mut out = Vec::new();
    let shared = |kind, name: String| Planned { tier: None, kind, name };
    let needs_network = plan.tiers.iter().any(|t| !matches!(t.settings, TierSettings::Lambda(_)));
    if needs_network {
        if aws.vpc_id.is_none() {
            out.push(shared("ec2 vpc", format!("{} ({})", n("vpc"), crate::deployer::VPC_CIDR)));
            out.push(shared("ec2 internet gateway", n("igw")));
        }
        let mut subnets: Vec<String> = Vec::new();
        for t in &plan.tiers {
            let names = match &t.settings {
                TierSettings::Ec2(e) => e.network.interface.subnets.clone(),
                TierSettings::Ecs(e) => e.network.interface.subnets.clone(),
                TierSettings::Lambda(_) => continue,
            };
            for s in names {
                if !subnets.contains(&s) {
                    let kind = if aws.vpc_id.is_some() { "ec2 subnet (existing)" } else { "ec2 subnet" };
                    out.push(shared(kind, n(&s)));
                    subnets.push(s);
                }
            }
        }
        if aws.harness_cidr.is_none() {
            out.push(shared("ec2 security group", n("harness")));
        }
        out.push(shared("s3 bucket", n("workload")));
        out.push(shared("s3 object", format!("{}/tenant-app", n("workload"))));
    }
    let tenants: Vec<String> = plan.scenario.tenants.iter().map(|t| t.id.clone()).collect();
    for t in &plan.tiers {
        let tier = Some(t.tier);
        let mut add = |kind, name: String| out.push(Planned { tier, kind, name });
        match &t.settings {
            TierSettings::Ec2(e) => {
                for g in e.network.resolve("{run}", &tenants).groups {
                    add("ec2 security group", n(&format!("{}-{}", t.tier, g.name)));
                }
                let units: Vec<String> = if t.tier == TierId::SharedEc2 {
                    vec!["shared-ec2".into()]
                } else {
                    tenants.iter().map(|x| format!("silo-{x}")).collect()
                };
                for u in units {
                    add("iam role", n(&u));
                    add("iam instance profile", n(&u));
                    add("ec2 instance", format!("{} ({}, Amazon Linux 2023)", n(&u), e.instance_type.name));
                }
            }
            TierSettings::Ecs(e) => {
                for g in e.resolve("{run}", &tenants).groups {
                    add("ec2 security group", n(&format!("{}-{}", t.tier, g.name)));
                }
                add("ecs cluster", n("ecs"));
                for x in &tenants {
                    add("iam role", e.task_role("{run}", x));
                    add("ecs task definition", crate::tiers::ecs::family(e, "{run}", x));
                    add("ecs task", format!("{} ({} awsvpc)", x, e.launch_type.as_str()));
                }
                if e.launch_type == LaunchType::Ec2 {
                    add("(not supported yet)", "ECS container instances for the ec2 launch type".into());
                }
            }
            TierSettings::Lambda(l) => {
                let names: Vec<String> = match t.tier {
                    TierId::LambdaPerTenant => tenants.iter().map(|x| n(&format!("fn-{x}"))).collect(),
                    TierId::LambdaShared => vec![n("shared")],
                    _ => vec![n("isolated")],
                };
                for f in names {
                    add("iam role", f.clone());
                    let mode = if t.tier == TierId::LambdaTenantIsolation { ", PER_TENANT" } else { "" };
                    add("lambda function", format!("{f} (provided.al2023, {} MB{mode})", l.memory));
                }
            }
        }
    }
    out
}

pub fn counts(plan: &Plan) -> Counts {
    let tenants = plan.scenario.tenants.len() as u32;
    let mut c = Counts::default();
    for t in &plan.tiers {
        match t.tier {
            TierId::SiloEc2 => c.instances += tenants,
            TierId::SharedEc2 => c.instances += 1,
            TierId::EcsAwsvpc => c.tasks += tenants,
            TierId::LambdaPerTenant => c.functions += tenants,
            TierId::LambdaShared | TierId::LambdaTenantIsolation => c.functions += 1,
        }
    }
    c
}

/// How long the run's resources would exist: tiers run one after another.
pub fn projected_lifetime(plan: &Plan) -> Duration {
    let per_tier = plan.scenario.run.duration.0 + TIER_OVERHEAD;
    per_tier * plan.tiers.len() as u32
}

/// A guard rail the plan exceeds.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GuardRail {
    #[error("the run would start {wanted} EC2 instances, more than [aws] max_instances = {cap}")]
    Instances { wanted: u32, cap: u32 },
    #[error("the run would start {wanted} ECS tasks, more than [aws] max_tasks = {cap}")]
    Tasks { wanted: u32, cap: u32 },
    #[error("the run would create {wanted} Lambda functions, more than [aws] max_functions = {cap}")]
    Functions { wanted: u32, cap: u32 },
    #[error("the run's projected cost ${wanted:.4} is more than [aws] max_cost_usd = ${cap:.4}")]
    Cost { wanted: f64, cap: f64 },
    #[error(
        "the run would keep resources for about {} ({} tier(s) x (traffic + {} deploy/teardown allowance)), \
         longer than [aws] max_lifetime = {}",
        humantime::format_duration(*wanted), tiers, humantime::format_duration(TIER_OVERHEAD),
        humantime::format_duration(*cap)
    )]
    Lifetime { wanted: Duration, cap: Duration, tiers: usize },
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
        out.push(GuardRail::Lifetime { wanted: life, cap: aws.max_lifetime.0, tiers: plan.tiers.len() });
    }
    out
}
