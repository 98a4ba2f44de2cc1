//! [`AwsTier`], the one trait every tier module implements (`tiers` says which module serves
//! which tier), and what it answers with. A leaf below the tier modules: the deployer and the
//! planner see tiers only through it.

use async_trait::async_trait;
use isobench_core::plan::TierPlan;
use isobench_core::{Deployment, TierId};

use crate::context::{DeployContext, DeployError};
use crate::tags::NAME_PREFIX;

/// What differs between tiers on AWS. A module keeps the whole tier: how tenants map to
/// instances, tasks or functions (layout), how many it starts and how big (sizing), what it
/// readies first (image, groups, roles, packages), the deploy, and its part of teardown, which
/// is what it records: every resource goes into the context's ledger under the tier's id, and
/// the deployer removes a tier's records in [`crate::resource::Resource::rank`] order, the
/// order `sweep` also uses, so no tier needs a teardown of its own.
#[async_trait]
pub trait AwsTier: Send + Sync {
    fn id(&self) -> TierId;
    /// What of the run's shared resources the tier uses, for `isobench plan`.
    fn needs(&self, tp: &TierPlan) -> Needs;
    /// How many instances, tasks and functions it starts for `tenants` tenants.
    fn counts(&self, tenants: u32) -> Counts;
    /// [`AwsTier::counts`] where the settings change them (ECS container instances).
    fn counts_for(&self, _tp: &TierPlan, tenants: u32) -> Counts {
        self.counts(tenants)
    }
    /// Its own resources a deploy would create for `tenants`, in creation order, named with
    /// [`planned_name`].
    fn planned(&self, tp: &TierPlan, tenants: &[String]) -> Vec<Planned>;
    /// The tier's settings this backend cannot honour yet: the run is refused before anything
    /// is created, rather than deploying something other than what the scenario says.
    fn refused(&self, _tp: &TierPlan) -> Vec<Refusal> {
        Vec::new()
    }
    /// The tier's settings that only shape the local emulator, as `field = value`: AWS has no
    /// such setting, so a run there ignores them (`isobench plan` says so).
    fn ignored(&self, _tp: &TierPlan) -> Vec<String> {
        Vec::new()
    }
    /// Time its deploy and teardown may take beyond traffic, for the lifetime guard rail and
    /// the plan's time estimate.
    fn allowance(&self, _tp: &TierPlan) -> std::time::Duration {
        TIER_OVERHEAD
    }
    /// What the tier bills during its allowance, beyond what the cost model's projection of its
    /// traffic time counts (modelled, dollars): an EKS cluster's control plane and nodes while
    /// they are created and deleted. Other tiers' allowance is minutes of a few instances or
    /// tasks, left out as before.
    fn allowance_usd(&self, _tp: &TierPlan, _tenants: u32, _pricing: &isobench_cost::Pricing) -> f64 {
        0.0
    }
    /// Creates the tier in `ctx`'s account, recording everything under [`AwsTier::id`].
    async fn deploy(&self, ctx: &mut DeployContext, tp: &TierPlan) -> Result<Deployment, DeployError>;
}

/// Time a tier's deploy and teardown may take on AWS beyond its traffic, for the lifetime
/// check: instances start in ~30 s, Fargate tasks in up to a minute, deletes wait for network
/// interfaces to detach. A generous allowance, not a measurement (EKS: its own, longer).
pub const TIER_OVERHEAD: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// The run's shared resources a tier uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// Scenario subnet names in the run's VPC (none: the tier needs no VPC).
    pub subnets: Vec<String>,
    /// Whether its compute fetches the workload from the run's bucket.
    pub workload_bucket: bool,
}

/// A tier setting the AWS backend does not implement: the field (under the tier's table), why
/// it is refused, and what would be accepted instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub field: &'static str,
    pub message: &'static str,
    pub accepted: &'static str,
}

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

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.instances += o.instances;
        self.tasks += o.tasks;
        self.functions += o.functions;
    }
}

/// The name a plan shows for a resource: the run id is not known yet.
pub fn planned_name(suffix: &str) -> String {
    format!("{NAME_PREFIX}{PLANNED_RUN}-{suffix}")
}

/// The run id in a plan's names (the tier's own templates, e.g. task roles, fill it in).
pub const PLANNED_RUN: &str = "{run}";

/// The architecture a tier runs on AWS: its own setting (validation fills it in), else the
/// run's `[aws] architecture`; `None` for a tier without one (EC2: the image follows `[aws]`).
pub fn tier_architecture(tp: &TierPlan) -> Option<isobench_core::scenario::aws::Architecture> {
    use isobench_core::scenario::TierSettings;
    match &tp.settings {
        TierSettings::Lambda(l) => l.architecture,
        TierSettings::Ecs(e) => e.architecture,
        TierSettings::Eks(e) => Some(e.architecture()),
        TierSettings::Ec2(_) => None,
    }
}

/// Why `tp` cannot deploy the run's one workload binary, built (or given) for `run_wide`:
/// deploying it to the other architecture would fail to start, or measure something else.
pub fn architecture_mismatch(tp: &TierPlan, run_wide: isobench_core::scenario::aws::Architecture) -> Option<String> {
    let arch = tier_architecture(tp).filter(|a| *a != run_wide)?;
    Some(format!(
        "the {} tier runs {} but the run's workload binary is for {} ([aws] architecture): the harness provides one \
         binary per run",
        tp.tier,
        arch.as_str(),
        run_wide.as_str()
    ))
}
