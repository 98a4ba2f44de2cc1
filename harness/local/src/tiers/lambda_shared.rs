//! `lambda-shared`: one function serves every tenant, with one role; its execution
//! environments are reused across invocations, so across tenants.

use isobench_core::plan::TierPlan;

use super::FunctionRequest;

pub(crate) fn functions(plan: &TierPlan) -> Vec<FunctionRequest> {
    vec![FunctionRequest {
        name: plan.tier.to_string(),
        tenants: plan.tenants.iter().map(|t| t.id.clone()).collect(),
        pinned_tenant: None,
        tenant_isolation: false,
    }]
}
