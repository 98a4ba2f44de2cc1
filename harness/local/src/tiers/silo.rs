//! `silo-ec2`: one instance per tenant, its workload pinned to that tenant.

use isobench_core::plan::TierPlan;

use super::InstanceRequest;

pub(crate) fn layout(plan: &TierPlan) -> Vec<InstanceRequest> {
    plan.tenants
        .iter()
        .map(|t| InstanceRequest { tenants: vec![t.id.clone()], pinned_tenant: Some(t.id.clone()) })
        .collect()
}
