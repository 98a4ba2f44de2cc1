//! `lambda-per-tenant`: one function per tenant, its code pinned to that tenant; an execution
//! environment never serves another function, so never another tenant.

use isobench_core::plan::TierPlan;

use super::FunctionRequest;

pub(crate) fn functions(plan: &TierPlan) -> Vec<FunctionRequest> {
    plan.tenants
        .iter()
        .map(|t| FunctionRequest {
            name: format!("{}-{}", plan.tier, t.id),
            tenants: vec![t.id.clone()],
            pinned_tenant: Some(t.id.clone()),
            tenant_isolation: false,
        })
        .collect()
}
