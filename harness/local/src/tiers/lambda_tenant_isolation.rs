//! `lambda-tenant-isolation`: one function created in tenant isolation mode (`PER_TENANT`):
//! every invoke carries a tenant id, and execution environments are keyed by it and never serve
//! another tenant. An invoke without one is rejected, as the real service rejects it.

use isobench_core::plan::TierPlan;

use super::FunctionRequest;

pub(crate) fn functions(plan: &TierPlan) -> Vec<FunctionRequest> {
    vec![FunctionRequest {
        name: plan.tier.to_string(),
        tenants: plan.tenants.iter().map(|t| t.id.clone()).collect(),
        pinned_tenant: None,
        tenant_isolation: true,
    }]
}
