//! One module per tier. A tier module only decides how tenants map onto instances and which
//! flags each instance's workload gets; creating, sizing and stopping instances is the shared
//! machinery in [`crate::instance`]. No tier module uses another. The Lambda tiers decide how
//! tenants map onto functions instead; environments are the machinery in `crate::lambda`.

pub(crate) mod ecs;
pub(crate) mod lambda_per_tenant;
pub(crate) mod lambda_shared;
pub(crate) mod lambda_tenant_isolation;
pub(crate) mod shared;
pub(crate) mod silo;

use isobench_core::plan::TierPlan;
use isobench_core::tier::TierId;

/// One instance a tier wants: the tenants it serves, and the tenant its workload is pinned
/// to (`--tenant`), if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InstanceRequest {
    pub tenants: Vec<String>,
    pub pinned_tenant: Option<String>,
}

/// The instances `plan`'s tier needs, or `None` if this backend does not implement the tier.
pub(crate) fn layout(plan: &TierPlan) -> Option<Vec<InstanceRequest>> {
    match plan.tier {
        TierId::SiloEc2 => Some(silo::layout(plan)),
        TierId::SharedEc2 => Some(shared::layout(plan)),
        TierId::EcsAwsvpc => Some(ecs::layout(plan)),
        TierId::LambdaPerTenant | TierId::LambdaShared | TierId::LambdaTenantIsolation => None,
    }
}

/// One Lambda function a tier wants: its name, the tenants whose invokes it serves, the tenant
/// its (sample) code is pinned to, and whether it runs in tenant isolation mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FunctionRequest {
    pub name: String,
    pub tenants: Vec<String>,
    pub pinned_tenant: Option<String>,
    pub tenant_isolation: bool,
}

/// The functions `plan`'s tier needs, or `None` if it is not a Lambda tier.
pub(crate) fn functions(plan: &TierPlan) -> Option<Vec<FunctionRequest>> {
    match plan.tier {
        TierId::LambdaPerTenant => Some(lambda_per_tenant::functions(plan)),
        TierId::LambdaShared => Some(lambda_shared::functions(plan)),
        TierId::LambdaTenantIsolation => Some(lambda_tenant_isolation::functions(plan)),
        TierId::SiloEc2 | TierId::SharedEc2 | TierId::EcsAwsvpc => None,
    }
}
