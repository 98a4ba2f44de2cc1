//! `ecs-awsvpc`: one task per tenant, its workload pinned to that tenant. What makes a task
//! more than an instance (the cluster bridge, security groups, the task role and the container
//! instance's metadata) is the cluster's, in [`crate::ecs`].

use isobench_core::plan::TierPlan;

use super::InstanceRequest;

pub(crate) fn layout(plan: &TierPlan) -> Vec<InstanceRequest> {
    plan.tenants
        .iter()
        .map(|t| InstanceRequest { tenants: vec![t.id.clone()], pinned_tenant: Some(t.id.clone()) })
        .collect()
}
