//! `shared-ec2`: one instance serves every tenant; its workload takes the tenant from each
//! request.

use isobench_core::plan::TierPlan;

use super::InstanceRequest;

pub(crate) fn layout(plan: &TierPlan) -> Vec<InstanceRequest> {
    vec![InstanceRequest { tenants: plan.tenants.iter().map(|t| t.id.clone()).collect(), pinned_tenant: None }]
}
