//! One module per tier. A tier module only decides how tenants map onto instances and which
//! flags each instance's workload gets; creating, sizing and stopping instances is the shared
//! machinery in [`crate::instance`]. No tier module uses another.

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
        TierId::EcsAwsvpc | TierId::LambdaPerTenant | TierId::LambdaShared | TierId::LambdaTenantIsolation => None,
    }
}
